"""``fewshot``: N-way K-shot episodes on unseen classes, for every metric loss.

Protocol: the training of the ``retrieval`` task (the first half of the classes train an
L2-normalised 64-d embedding with the method's loss on P x K batches), then few-shot
classification on the other half: :attr:`FewShotTask.episodes` seeded 5-way episodes with 1 and
5 support images per class and 15 queries per class (:class:`paperzoo.data.EpisodeSampler`), each
query given the class of the nearest prototype (the mean support embedding, cosine similarity).
Episodic methods (an :class:`~paperzoo.losses.episodic.EpisodicLoss`: GPAM, ProtoN) train the same
embedding on the same P x K batches, each batch an episode of half its samples per class as
support and half as queries (:class:`~paperzoo.losses.episodic.BatchEpisodes`); the evaluation
is the same nearest-prototype rule on their embedding, so the table compares what each method's
training does to the embedding, not the method's own classifier.
Metrics: the mean accuracy over the episodes, 1-shot and 5-shot; the 95% interval over the
episodes of each run is in the result's values (``... CI95`` metrics, half-widths). The methods are
the metric losses of the ``retrieval`` task and the episodic methods of this one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from paperzoo.compare.data import Data, DataError
from paperzoo.compare.task import Setting, Split, outputs
from paperzoo.compare.tasks.retrieval import RetrievalTask
from paperzoo.data import EpisodeSampler

__all__ = ["TASK", "FewShotTask", "episode_accuracies"]


def episode_accuracies(
    embeddings: torch.Tensor, labels: torch.Tensor, n_way: int, k_shot: int, n_query: int, episodes: int, seed: int
) -> np.ndarray:
    """Nearest-prototype accuracy of each of ``episodes`` seeded N-way K-shot episodes drawn from
    ``labels``, on L2-normalised ``embeddings``, all episodes at once (no loop over samples)."""
    sampler = EpisodeSampler(labels.numpy(), n_way, k_shot, n_query, episodes, seed)
    drawn = list(sampler)
    support = torch.from_numpy(np.stack([e.support_idx for e in drawn]))  # (E, N*K), class by class
    query = torch.from_numpy(np.stack([e.query_idx for e in drawn]))  # (E, N*Q)
    emb = torch.nn.functional.normalize(embeddings, dim=1)
    protos = torch.nn.functional.normalize(emb[support].view(episodes, n_way, k_shot, -1).mean(2), dim=2)
    scores = torch.einsum("eqd,end->eqn", emb[query], protos)
    target = torch.arange(n_way).repeat_interleave(n_query)
    return (scores.argmax(dim=2) == target).double().mean(dim=1).numpy()


class FewShotTask(RetrievalTask):
    """5-way 1-shot and 5-shot accuracy on unseen classes of an embedding trained with each metric loss."""

    name = "fewshot"
    description = (
        "an embedding MLP trained on half the classes; 5-way 1-shot / 5-shot nearest-prototype accuracy on "
        "episodes of the unseen other half"
    )
    #: the methods of these tasks are methods of this one too
    shares_methods_of = ("retrieval",)
    n_way = 5
    n_query = 15
    shots = (1, 5)
    episodes = 600

    def metrics(self, data: Data) -> list[str]:
        return [m for k in self.shots for m in (f"{self.n_way}-way {k}-shot", f"{self.n_way}-way {k}-shot CI95")]

    def check(self, data: Data) -> None:
        unseen = data.num_classes - data.num_classes // 2
        if unseen < self.n_way:
            raise DataError(
                f"{data.origin}: key 'y' holds {data.num_classes} classes; {self.n_way}-way episodes need at least "
                f"{self.n_way} unseen classes ({2 * self.n_way} in all)"
            )
        super().check(data)

    def component_context(self, split: Split) -> dict[str, Any]:
        """The retrieval task's context, plus ``dim`` (the embedding width) for episodic methods."""
        return {**super().component_context(split), "dim": self.embedding_dim}

    def train(self, model: nn.Module, component: nn.Module, split: Split, seed: int, setting: Setting) -> None:
        from paperzoo.losses.episodic import BatchEpisodes, EpisodicLoss

        if isinstance(component, EpisodicLoss):
            component = BatchEpisodes(component, support=self.per_class // 2)
        super().train(model, component, split, seed, setting)

    def split(self, data: Data, seed: int, setting: Setting) -> Split:
        split = super().split(data, seed, setting)
        return replace(split, description=split.description.replace("retrieval samples", "episode samples"))

    def evaluate(self, model: nn.Module, split: Split, metrics: Sequence[str]) -> dict[str, float]:
        emb = outputs(model, split.x_test)
        values: dict[str, float] = {}
        for k in self.shots:
            acc = episode_accuracies(emb, split.y_test, self.n_way, k, self.n_query, self.episodes, seed=k)
            values[f"{self.n_way}-way {k}-shot"] = float(acc.mean())
            values[f"{self.n_way}-way {k}-shot CI95"] = float(1.96 * acc.std(ddof=1) / np.sqrt(len(acc)))
        return {m: values[m] for m in metrics}

    def protocol(self, setting: Setting) -> str:
        return (
            super().protocol(setting).replace("retrieval among", "episodes from")
            + f"; {self.episodes} seeded {self.n_way}-way episodes per shot count, {self.n_query} queries per class, "
            "nearest prototype by cosine similarity"
        )


TASK = FewShotTask()
