"""Episode losses on P x K batches: the support / query split, the adapter, ProtoN as one episode
loss, and the episodic methods of ``paperzoo compare --task fewshot``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperzoo.compare import compare
from paperzoo.compare.registry import methods_of
from paperzoo.losses import GPAMLoss
from paperzoo.losses.episodic import BatchEpisodes, episode_split
from paperzoo.losses.proton import ProtoNEpisodeLoss


def test_episode_split_takes_the_first_samples_of_each_class_in_batch_order() -> None:
    labels = torch.tensor([2, 0, 2, 1, 0, 1, 2, 0, 1])
    s, q = episode_split(labels, 2)
    assert s.tolist() == [1, 4, 3, 5, 0, 2] and sorted(q.tolist()) == [6, 7, 8]
    assert labels[s].tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="class 1 has 2 samples in the batch"):
        episode_split(torch.tensor([0, 0, 0, 1, 1]), 2)


def test_batch_episodes_equals_the_episode_loss_on_the_split() -> None:
    torch.manual_seed(0)
    gpam = GPAMLoss(dim=8, n_views=0)
    emb, labels = torch.randn(12, 8), torch.arange(3).repeat(4)
    s, q = episode_split(labels, 2)
    expected = gpam(emb[s], labels[s], emb[q], labels[q])
    assert torch.equal(BatchEpisodes(gpam, 2)(emb, labels), expected)
    with pytest.raises(ValueError, match="empty batch"):
        BatchEpisodes(gpam, 2)(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="BatchEpisodes: support must be"):
        BatchEpisodes(gpam, 0)


def test_proton_episode_loss_gradients_and_errors() -> None:
    torch.manual_seed(0)
    loss = ProtoNEpisodeLoss(num_classes=3, dim=4, n_layers=1).double()
    support = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    query = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    s_labels, q_labels = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([2, 0, 1])
    assert torch.autograd.gradcheck(lambda a, b: loss(a, s_labels, b, q_labels), (support, query))
    with pytest.raises(ValueError, match="same number of samples of each class"):
        loss(support[:5], s_labels[:5], query, q_labels)
    with pytest.raises(ValueError, match="query_labels: class 2 has no support"):
        loss(support[:4], s_labels[:4], query, q_labels)


def test_episodic_methods_are_fewshot_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fewshot = methods_of("fewshot")
    assert fewshot["gpam"].source == "paper 51" and fewshot["proton"].source == "paper 01"
    assert "gpam" not in methods_of("retrieval")
    result = compare("fewshot", "digits", ["gpam", "proton"], seeds=(0,), budget=3, jobs=1, progress=False)
    assert 0.2 <= result.table.mean("proton", "5-way 5-shot") <= 1.0
