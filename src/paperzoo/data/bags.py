"""Random bags, aggregate responses, the label-DP aggregation mechanism and the linear-regression
bag data of Javanmard, Chen, Mirrokni, Badanidiyuru & Fu, "Learning from Aggregate responses:
Instance Level versus Bag Level Loss Functions" (ICLR 2024, arXiv 2401.11081).

* :func:`make_random_bags`: a uniformly random partition of n samples into bags of size k (the
  last bag smaller when k does not divide n; the paper assumes it does).
* :func:`aggregate_responses`: the bag means ``ybar_a`` of the responses.
* :func:`laplace_label_dp_aggregates`: the paper's label-differentially-private mechanism
  (Algorithm 1): clip the responses to ``[-C sqrt(log n), C sqrt(log n)]``, average the clipped
  responses per bag, add Laplace noise to each bag mean.
* :class:`BagBatchSampler`: mini-batches made of whole bags (so the bag means of predictions can
  be computed inside a batch).
* :func:`make_linear_bag_data`: the paper's linear-regression setting with Gaussian design,
  ``x ~ N(0, I_d)``, ``y = x^T theta* + eps``, ``eps ~ N(0, sigma^2)``, ``theta*`` uniform on the
  sphere of radius ``theta_norm``, random bags of size ``k``.

Everything is generated from an explicit seed or ``numpy.random.Generator`` (no global state).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Sampler

from paperzoo._validation import Interval, check_finite, check_labels, validate_params

__all__ = [
    "BagBatchSampler",
    "LinearBagData",
    "aggregate_responses",
    "compact_bags",
    "dp_noise_scale",
    "laplace_label_dp_aggregates",
    "make_linear_bag_data",
    "make_random_bags",
]

_POS_INT = [Interval(int, 1, math.inf, closed="left")]
_POS_FLOAT = [Interval(float, 0.0, math.inf, closed="neither")]
_NONNEG_FLOAT = [Interval(float, 0.0, math.inf, closed="left")]

Seed = int | np.random.Generator


def _rng(seed: Seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    validate_params({"seed": [Interval(int, 0, math.inf, closed="left")]}, {"seed": seed}, owner="bags")
    return np.random.default_rng(seed)


def make_random_bags(n: int, bag_size: int, seed: Seed = 0) -> torch.Tensor:
    """Bag index (n,) int64 of a uniformly random partition into ``ceil(n / bag_size)`` bags of
    ``bag_size`` samples (the last bag holds the remainder when ``bag_size`` does not divide ``n``).
    Bag ``a`` holds the samples ``perm[a k : (a + 1) k]`` of a random permutation."""
    validate_params({"n": _POS_INT, "bag_size": _POS_INT}, {"n": n, "bag_size": bag_size}, owner="make_random_bags")
    perm = _rng(seed).permutation(n)
    index = np.empty(n, dtype=np.int64)
    index[perm] = np.arange(n) // bag_size
    return torch.from_numpy(index)


def aggregate_responses(y: torch.Tensor, bag_index: torch.Tensor, num_bags: int | None = None) -> torch.Tensor:
    """The mean response of every bag, ``ybar_a = (1/k_a) sum_{i in a} y_i`` (num_bags,), in the
    dtype of ``y``. ``num_bags`` defaults to ``max(bag_index) + 1``; every bag needs an instance."""
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.dim() != 1 or y.shape[0] == 0:
        raise ValueError(f"y must be a non-empty floating-point torch.Tensor of shape (n,), got {_describe(y)}")
    check_finite(y, "y")
    check_labels(bag_index, y.shape[0], "bag_index")
    if num_bags is None:
        num_bags = int(bag_index.max()) + 1
    validate_params({"num_bags": _POS_INT}, {"num_bags": num_bags}, owner="aggregate_responses")
    check_labels(bag_index, y.shape[0], "bag_index", num_bags)
    counts = torch.bincount(bag_index, minlength=num_bags)
    if bool((counts == 0).any()):
        empty = torch.nonzero(counts == 0)[:5, 0].tolist()
        raise ValueError(f"bag_index: bag(s) {empty} of the {num_bags} bags have no instances")
    sums = torch.zeros(num_bags, dtype=y.dtype, device=y.device).index_add_(0, bag_index, y)
    return sums / counts.to(y.dtype)


def dp_noise_scale(n: int, bag_size: int, epsilon: float, C: float, paper_scale: bool = False) -> float:
    """The Laplace scale ``b`` of :func:`laplace_label_dp_aggregates`.

    Changing one clipped response moves a bag mean by at most ``2 C sqrt(log n) / k``, so the
    epsilon-label-DP Laplace mechanism uses ``b = 2 C sqrt(log n) / (k epsilon)`` (the default);
    ``paper_scale=True`` gives the paper's ``b = C sqrt(log n) / (k epsilon)``, half of it (which
    is epsilon-DP only for a sensitivity of ``C sqrt(log n) / k``).
    """
    validate_params(
        {
            "n": [Interval(int, 2, math.inf, closed="left")],
            "bag_size": _POS_INT,
            "epsilon": _POS_FLOAT,
            "C": _POS_FLOAT,
        },
        {"n": n, "bag_size": bag_size, "epsilon": epsilon, "C": C},
        owner="dp_noise_scale",
    )
    bound = C * math.sqrt(math.log(n))
    return (1.0 if paper_scale else 2.0) * bound / (bag_size * epsilon)


def laplace_label_dp_aggregates(
    y: torch.Tensor,
    bag_index: torch.Tensor,
    epsilon: float,
    C: float,
    *,
    paper_scale: bool = False,
    seed: Seed = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's label-DP aggregation (Algorithm 1): ``(noisy bag means (m,), Laplace scales (m,))``.

    1. clip ``y_i`` to ``[-C sqrt(log n), C sqrt(log n)]``;
    2. average the clipped responses per bag;
    3. add ``Laplace(0, b_a)`` noise to each bag mean, ``b_a = dp_noise_scale(n, k_a, epsilon, C)``
       with the bag's own size ``k_a`` (a response is in one bag only, so calibrating each bag to its
       own sensitivity keeps epsilon-label-DP; with equal bags every ``b_a`` is the paper's ``b``).

    The paper assumes ``C^2 > 2 (1 + sigma^2)`` for unit-norm signal, so that clipping is rare.
    """
    validate_params({"epsilon": _POS_FLOAT, "C": _POS_FLOAT}, {"epsilon": epsilon, "C": C},
                    owner="laplace_label_dp_aggregates")  # fmt: skip
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.dim() != 1 or y.shape[0] < 2:
        raise ValueError(f"y must be a floating-point torch.Tensor of shape (n,) with n >= 2, got {_describe(y)}")
    n = y.shape[0]
    bound = C * math.sqrt(math.log(n))
    check_finite(y, "y")
    ybar = aggregate_responses(y.clamp(-bound, bound), bag_index)
    counts = torch.bincount(bag_index, minlength=ybar.shape[0]).to(torch.float64)
    scale = (1.0 if paper_scale else 2.0) * bound / (counts * epsilon)
    noise = torch.from_numpy(_rng(seed).laplace(0.0, 1.0, size=ybar.shape[0])) * scale
    return ybar + noise.to(device=ybar.device, dtype=ybar.dtype), scale.to(ybar.dtype)


class BagBatchSampler(Sampler[list[int]]):
    """Mini-batches of whole bags: each batch is the instance indices of ``bags_per_batch`` bags
    (shuffled each epoch when ``shuffle``; the epoch's order comes from ``seed`` and the epoch
    number). Pass it as ``batch_sampler=`` to a ``DataLoader``."""

    def __init__(self, bag_index: torch.Tensor, bags_per_batch: int, *, shuffle: bool = True, seed: int = 0) -> None:
        check_labels(bag_index, bag_index.shape[0] if isinstance(bag_index, torch.Tensor) else -1, "bag_index")
        validate_params({"bags_per_batch": _POS_INT}, {"bags_per_batch": bags_per_batch}, owner="BagBatchSampler")
        order = torch.argsort(bag_index, stable=True)
        bags, counts = torch.unique_consecutive(bag_index[order], return_counts=True)
        self._members = list(torch.split(order, counts.tolist()))
        self.bags = bags
        self.bags_per_batch, self.shuffle, self.seed, self.epoch = bags_per_batch, shuffle, seed, 0

    def __len__(self) -> int:
        return math.ceil(len(self._members) / self.bags_per_batch)

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` next (``engine.fit`` calls it before each epoch)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        m = len(self._members)
        if self.shuffle:
            perm = np.random.default_rng([self.seed, self.epoch]).permutation(m)
            self.epoch += 1
        else:
            perm = np.arange(m)
        for start in range(0, m, self.bags_per_batch):
            chosen = perm[start : start + self.bags_per_batch]
            yield torch.cat([self._members[j] for j in chosen]).tolist()


def compact_bags(bag_id: torch.Tensor, ybar_of_instance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-index the bags of a mini-batch: from each instance's global bag id (n,) and its bag's
    response repeated per instance (n,), return ``(bag_index (n,) in [0, m_b), ybar (m_b,))`` for
    the ``m_b`` bags present, the inputs of the aggregate losses. Use with
    :class:`BagBatchSampler`, whose batches hold whole bags."""
    check_labels(bag_id, bag_id.shape[0] if isinstance(bag_id, torch.Tensor) else -1, "bag_id")
    if not isinstance(ybar_of_instance, torch.Tensor) or ybar_of_instance.shape != bag_id.shape:
        raise ValueError(f"ybar_of_instance must be a torch.Tensor of shape {tuple(bag_id.shape)}")
    unique, local = torch.unique(bag_id, return_inverse=True)
    ybar = torch.zeros(unique.shape[0], dtype=ybar_of_instance.dtype, device=ybar_of_instance.device)
    return local, ybar.scatter_(0, local, ybar_of_instance)


@dataclass(frozen=True)
class LinearBagData:
    """One draw of the linear-regression bag setting (float64 tensors)."""

    X: torch.Tensor  # (n, d) features, x_i ~ N(0, I_d)
    y: torch.Tensor  # (n,) individual responses (hidden from the learner)
    theta: torch.Tensor  # (d,) true coefficients
    bag_index: torch.Tensor  # (n,) int64
    ybar: torch.Tensor  # (m,) bag means of y
    noise_std: float
    bag_size: int


def make_linear_bag_data(
    n: int, d: int, bag_size: int, noise_std: float, theta_norm: float = 1.0, seed: Seed = 0
) -> LinearBagData:
    """``x_i ~ N(0, I_d)``, ``theta*`` uniform on the sphere of radius ``theta_norm``,
    ``y_i = x_i^T theta* + eps_i`` with ``eps_i ~ N(0, noise_std^2)``, random bags of
    ``bag_size`` and their mean responses (the setting of the paper's asymptotic analysis)."""
    validate_params(
        {"n": _POS_INT, "d": _POS_INT, "bag_size": _POS_INT, "noise_std": _NONNEG_FLOAT, "theta_norm": _NONNEG_FLOAT},
        {"n": n, "d": d, "bag_size": bag_size, "noise_std": noise_std, "theta_norm": theta_norm},
        owner="make_linear_bag_data",
    )
    rng = _rng(seed)
    direction = rng.standard_normal(d)
    theta = theta_norm * direction / np.linalg.norm(direction)
    X = rng.standard_normal((n, d))
    y = X @ theta + noise_std * rng.standard_normal(n)
    bag_index = make_random_bags(n, bag_size, rng)
    t = torch.from_numpy
    yt = t(y)
    return LinearBagData(t(X), yt, t(theta), bag_index, aggregate_responses(yt, bag_index), noise_std, bag_size)


def _describe(x: object) -> object:
    return f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
