"""The paper catalog: the fixed identity of the 53 papers of the list (plus shared baselines),
joined with what paperzoo has for each.

Identity (number, slug, title, year, family, what it builds on) is this module's table and
does not grow. Everything that grows lives beside the code: the paper's record in
:mod:`paperzoo.papers` (summary, components, usage, the paper's headline) and its committed
result summary (``paperzoo/papers/results/NN-slug.json``). A paper's status is derived, never
typed:

* ``planned``: no record;
* ``implemented``: a record whose components all import;
* ``reproduced``: also a reproduction module (``paperzoo.reproductions.pNN_slug``) and a
  committed summary of its full run.

:func:`check_catalog` proves that identity, record, reproduction and recorded result agree;
the test suite runs it.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["planned", "implemented", "reproduced"]
STATUSES: tuple[str, ...] = ("planned", "implemented", "reproduced")


@dataclass(frozen=True)
class Paper:
    """One paper of the list (``number`` 1..53) or a shared baseline (``number`` 0)."""

    number: int
    slug: str
    title: str
    year: int
    family: str
    baseline: bool = False
    builds_on: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        """``NN-slug``, the name of the paper's card and recorded result."""
        return f"{self.number:02d}-{self.slug}"

    @property
    def record(self) -> Any:
        """The paper's :class:`paperzoo.papers.Record`, or None."""
        from paperzoo.papers import records

        return records().get(self.number)

    @property
    def reproduction(self) -> str | None:
        """Module path of the paper's reproduction, or None."""
        from paperzoo.reproductions import available

        return available().get(self.number)

    @property
    def result(self) -> dict[str, Any] | None:
        """The committed summary of the paper's full reproduction, or None."""
        from paperzoo.papers import recorded_result

        return recorded_result(self.key)

    @property
    def status(self) -> Status:
        if self.record is None:
            return "planned"
        if self.reproduction is not None and self.result is not None:
            return "reproduced"
        return "implemented"

    @property
    def components(self) -> tuple[str, ...]:
        return self.record.components if self.record else ()

    @property
    def summary(self) -> str | None:
        return self.record.summary if self.record else None

    @property
    def usage(self) -> str | None:
        return self.record.usage if self.record else None

    @property
    def measured(self) -> str:
        """One line generated from the recorded result ("" if none)."""
        from paperzoo.summaries import measured_line

        result = self.result
        return measured_line(result) if result else ""

    def to_dict(self) -> dict[str, object]:
        return {
            "number": self.number,
            "key": self.key,
            "slug": self.slug,
            "title": self.title,
            "year": self.year,
            "family": self.family,
            "baseline": self.baseline,
            "builds_on": list(self.builds_on),
            "status": self.status,
            "components": list(self.components),
            "reproduction": self.reproduction,
            "summary": self.summary,
            "usage": self.usage,
            "verdict": (self.result or {}).get("verdict"),
            "measured": self.measured,
        }


def _id(number: int, slug: str, title: str, year: int, family: str, **kw: Any) -> Paper:
    return Paper(number, slug, title, year, family, **kw)


PAPERS: tuple[Paper, ...] = (
    _id(0, 'simgcd-baseline', 'Parametric Classification for Generalized Category Discovery: A Baseline Study (SimGCD)', 2023, 'discovery', baseline=True),
    _id(1, 'proton-prototype-node-gnn-ear-recognition', 'ProtoN: Prototype Node Graph Neural Network for Unconstrained Multi-Impression Ear Recognition', 2025, 'fewshot'),
    _id(2, 'outfittransformer', 'OutfitTransformer: Learning Outfit Representations for Fashion Recommendation', 2022, 'retrieval'),
    _id(3, 'concept-centric-transformers', 'Concept-Centric Transformers: Enhancing Model Interpretability through Object-Centric Concept Learning within a Shared Global Workspace', 2023, 'interpretability'),
    _id(4, 'degla-decoupled-global-local-alignment', 'Decoupled Global-Local Alignment for Improving Compositional Understanding', 2025, 'embedding'),
    _id(5, 'z-loss', 'The Z-loss: a shift and scale invariant classification loss belonging to the Spherical Family', 2016, 'losses'),
    _id(6, 'glocal-information-bottleneck-imputation', 'Glocal Information Bottleneck for Time Series Imputation', 2025, 'timeseries'),
    _id(7, 'legogcd', 'Solving the Catastrophic Forgetting Problem in Generalized Category Discovery', 2025, 'discovery', builds_on=(0,)),
    _id(8, 'unpg-unified-negative-pair-generation', 'Unified Negative Pair Generation toward Well-discriminative Feature Space for Face Recognition', 2022, 'metric-learning'),
    _id(9, 'discriminative-vs-generative', 'Revisiting Discriminative vs. Generative Classifiers: Theory and Implications', 2023, 'theory'),
    _id(10, 'neural-collapse-deep-linear', 'Neural Collapse in Deep Linear Networks: From Balanced to Imbalanced Data', 2023, 'theory'),
    _id(11, 'anyloss', 'AnyLoss: Transforming Classification Metrics into Loss Functions', 2024, 'losses'),
    _id(12, 'ihomer-online-label-partitioning', 'Online hierarchical partitioning of the output space in extreme multi-label data stream', 2025, 'multilabel'),
    _id(13, 'ldr-losses', 'Label Distributionally Robust Losses for Multi-class Classification: Consistency, Robustness and Adaptivity', 2021, 'losses'),
    _id(14, 'rcal-noisy-long-tail', 'When Noisy Labels Meet Long Tail Dilemmas: A Representation Calibration Method', 2022, 'robustness'),
    _id(15, 'glc-upcycling', 'Upcycling Models under Domain and Category Shift', 2023, 'adaptation'),
    _id(16, 'modhifi', 'ModHiFi: Identifying High Fidelity predictive components for Model Modification', 2025, 'pruning'),
    _id(17, 'logistic-regression-large-step-sizes', 'From Logistic Regression to the Perceptron Algorithm: Exploring Gradient Descent with Large Step Sizes', 2024, 'theory'),
    _id(18, 'fedloge', 'FedLoGe: Joint Local and Generic Federated Learning under Long-tailed Data', 2024, 'federated'),
    _id(19, 'wide-deep-networks-optimal-classification', 'Wide and Deep Neural Networks Achieve Optimality for Classification', 2022, 'theory'),
    _id(20, 'local-or-global-federated-limited-labels', 'Local or Global: Selective Knowledge Assimilation for Federated Learning with Limited Labels', 2023, 'federated'),
    _id(21, 'fedld-loss-decomposition', 'Tackling Data Heterogeneity in Federated Learning via Loss Decomposition', 2024, 'federated'),
    _id(22, 'global-magnitude-pruning', 'Is Complexity Required for Neural Network Pruning? A Case Study on Global Magnitude Pruning', 2022, 'pruning'),
    _id(23, 'foa-attack-mllm', 'Adversarial Attacks against Closed-Source MLLMs via Feature Optimal Alignment', 2025, 'adversarial'),
    _id(24, 'protogcd', 'ProtoGCD: Unified and Unbiased Prototype Learning for Generalized Category Discovery', 2025, 'discovery', builds_on=(0,)),
    _id(25, 'dual-head-kd', 'Dual-Head Knowledge Distillation: Enhancing Logits Utilization with an Auxiliary Head', 2024, 'distillation'),
    _id(26, 'loki-geometry-aware-adaptation', 'Geometry-Aware Adaptation for Pretrained Models', 2023, 'adaptation'),
    _id(27, 'hypcd', 'Hyperbolic Category Discovery', 2025, 'discovery', builds_on=(0,)),
    _id(28, 'multi-similarity-loss', 'Multi-Similarity Loss with General Pair Weighting for Deep Metric Learning', 2019, 'metric-learning'),
    _id(29, 'cfcd-coarse-to-fine-single-stage-retrieval', 'Coarse-to-Fine: Learning Compact Discriminative Representation for Single-Stage Image Retrieval', 2023, 'retrieval'),
    _id(30, 'ood-unlabeled-rss', 'Out-Of-Domain Unlabeled Data Improves Generalization', 2023, 'theory'),
    _id(31, 'loss-landscape-hessian-generalization', 'Investigating generalization capabilities of neural networks by means of loss landscapes and Hessian analysis', 2024, 'analysis'),
    _id(32, 'metrix-mixup-deep-metric-learning', 'It Takes Two to Tango: Mixup for Deep Metric Learning', 2021, 'metric-learning'),
    _id(33, 'datasetequity', 'DatasetEquity: Are All Samples Created Equal? In The Quest For Equity Within Datasets', 2023, 'reweighting'),
    _id(34, 'happy-cgcd', 'Happy: A Debiased Learning Framework for Continual Generalized Category Discovery', 2024, 'discovery', builds_on=(0,)),
    _id(35, 'exact-inductive-bias', 'Towards Exact Computation of Inductive Bias', 2024, 'analysis'),
    _id(36, 'mufac-unlearning-benchmark', 'Towards Machine Unlearning Benchmarks: Forgetting the Personal Identities in Facial Recognition Systems', 2023, 'unlearning'),
    _id(37, 'susana-proto-triplet-icnn-losses', 'SuSana Distancia is all you need: Enforcing class separability in metric learning via two novel distance-based loss functions for few-shot image classification', 2023, 'metric-learning'),
    _id(38, 'domainmix-generalizable-reid', 'DomainMix: Learning Generalizable Person Re-Identification Without Human Annotations', 2020, 'adaptation'),
    _id(39, 'domain-penalisation', 'Domain penalisation for improved Out-of-Distribution Generalisation', 2024, 'adaptation'),
    _id(40, 'unime-v2', 'UniME-V2: MLLM-as-a-Judge for Universal Multimodal Embedding Learning', 2025, 'embedding'),
    _id(41, 'global-shape-bias', 'Does resistance to style-transfer equal Global Shape Bias? Measuring network sensitivity to global shape configuration', 2023, 'analysis'),
    _id(42, 'label-agnostic-forgetting', 'Label-Agnostic Forgetting: A Supervision-Free Unlearning in Deep Models', 2024, 'unlearning'),
    _id(43, 'kalm-embedding-v2', 'KaLM-Embedding-V2: Superior Training Techniques and Data Inspire A Versatile Embedding Model', 2025, 'embedding'),
    _id(44, 'active-gcd', 'Active Generalized Category Discovery', 2024, 'discovery', builds_on=(0,)),
    _id(45, 'attribute-to-delete', 'Attribute-to-Delete: Machine Unlearning via Datamodel Matching', 2024, 'unlearning'),
    _id(46, 'latent-label-shift-ddfa', 'Unsupervised Learning under Latent Label Shift', 2022, 'adaptation'),
    _id(47, 'one-step-gd-in-context-learner', 'One Step of Gradient Descent is Provably the Optimal In-Context Learner with One Layer of Linear Self-Attention', 2023, 'theory'),
    _id(48, 'pu-mlc', 'Positive Label Is All You Need for Multi-Label Classification', 2023, 'multilabel'),
    _id(49, 'aggregate-responses-bag-vs-instance', 'Learning from Aggregate responses: Instance Level versus Bag Level Loss Functions', 2024, 'theory'),
    _id(50, 'mlcd', 'Multi-label Cluster Discrimination for Visual Representation Learning', 2024, 'embedding'),
    _id(51, 'gpam-gaussian-prototype-adaptive-margin', 'Few-shot Open Relation Extraction with Gaussian Prototype and Adaptive Margin', 2024, 'fewshot'),
    _id(52, 'superglobal-global-features-retrieval-reranking', 'Global Features are All You Need for Image Retrieval and Reranking', 2023, 'retrieval'),
    _id(53, 'loss-based-sample-reweighting', 'Dynamic Loss-Based Sample Reweighting for Improved Large Language Model Pretraining', 2025, 'reweighting'),
)  # fmt: skip

_BY_NUMBER = {p.number: p for p in PAPERS}
_BY_SLUG = {p.slug: p for p in PAPERS}


def families() -> list[str]:
    """The families in catalog order, each once."""
    return list(dict.fromkeys(p.family for p in PAPERS))


def get(ref: int | str) -> Paper:
    """Look a paper up by number (``28``, ``"28"``, ``"028"``), slug, or ``NN-slug`` key.

    >>> get("28").key
    '28-multi-similarity-loss'
    >>> get("z-loss").number
    5
    """
    if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
        n = int(ref)
        if n in _BY_NUMBER:
            return _BY_NUMBER[n]
        raise KeyError(f"no paper number {n}; the list has 1..53 (0 = the SimGCD baseline)")
    s = ref.strip().lower()
    if s in _BY_SLUG:
        return _BY_SLUG[s]
    for p in PAPERS:
        if s == p.key:
            return p
    raise KeyError(f"no paper {ref!r}; try `paperzoo list`")


def select(family: str | None = None, status: str | None = None) -> list[Paper]:
    """Papers filtered by family and/or status (baselines included)."""
    if family is not None and family not in families():
        raise ValueError(f"unknown family {family!r}; one of {families()}")
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; one of {list(STATUSES)}")
    return [p for p in PAPERS if (family is None or p.family == family) and (status is None or p.status == status)]


def resolve(path: str) -> object:
    """Import ``package.module.Name`` (or a module path, or ``module:Name``) and return the object."""
    if ":" in path:
        module, _, name = path.partition(":")
        return getattr(importlib.import_module(module), name)
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError:
        module, _, name = path.rpartition(".")
        if not module:
            raise
        return getattr(importlib.import_module(module), name)


def _check_result(paper: Paper, result: dict[str, Any]) -> list[str]:
    """The recorded summary names this paper, is a full run, and its verdict and outcomes
    follow from its numbers."""
    from paperzoo.summaries import outcome_of, verdict_from_outcomes

    problems = []
    for field_, want in (("paper", paper.number), ("key", paper.key), ("title", paper.title)):
        if result.get(field_) != want:
            problems.append(f"{paper.key}: recorded result has {field_} {result.get(field_)!r}, expected {want!r}")
    if result.get("budget") is not None:
        problems.append(f"{paper.key}: recorded result is a {result['budget']!r} run, not the full one")
    record = paper.record
    if record is not None and result.get("paper_result") != record.paper_result:
        problems.append(f"{paper.key}: recorded result and record disagree on the paper's headline")
    for claim in result.get("claims", []):
        if outcome_of(claim) != claim["outcome"]:
            problems.append(f"{paper.key}: claim {claim['statement']!r} says {claim['outcome']} against its interval")
    if result.get("verdict") != verdict_from_outcomes([c["outcome"] for c in result.get("claims", [])]):
        problems.append(f"{paper.key}: recorded verdict {result.get('verdict')!r} does not follow from the claims")
    for method in result.get("methods", []):
        for metric in result.get("metrics", []):
            cell = result.get("table", {}).get(method, {}).get(metric)
            finite = cell is not None and all(
                isinstance(cell.get(k), (int, float)) and math.isfinite(cell[k]) for k in ("mean", "std")
            )
            # a metric that does not apply to a method (a pruning metric of an unlearning row) is
            # missing in every seed by design: null mean and std over all seeds, shown as n/a
            not_applicable = cell is not None and cell.get("mean") is None and cell.get("std") is None
            if not (finite or not_applicable) or cell.get("n") != len(result.get("seeds", [])):
                problems.append(f"{paper.key}: recorded table lacks {method!r} x {metric!r} over every seed")
    return problems


def check_paper(paper: Paper) -> list[str]:
    """Problems that make ``paper.status`` a claim the code does not back (empty if none)."""
    problems: list[str] = []
    record, reproduction, result = paper.record, paper.reproduction, paper.result
    if record is None:
        if reproduction or result:
            problems.append(f"{paper.key}: a reproduction or recorded result but no record in paperzoo.papers")
        return problems
    if not record.components:
        problems.append(f"{paper.key}: the record lists no component")
    for c in record.components:
        try:
            resolve(c)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{paper.key}: component {c} does not import ({exc})")
    for method in record.methods:
        try:
            resolve(method.factory)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{paper.key}: compare method {method.name} does not import ({exc})")
    if reproduction is not None:
        mod = importlib.import_module(reproduction)
        if not callable(getattr(mod, "run", None)):
            problems.append(f"{paper.key}: reproduction {reproduction} has no run()")
        if getattr(mod, "PAPER", None) != paper.number:
            problems.append(f"{paper.key}: reproduction {reproduction} is for paper {getattr(mod, 'PAPER', None)}")
        if result is None:
            problems.append(
                f"{paper.key}: reproduction without a recorded result: run `paperzoo reproduce {paper.number} --record`"
            )
    elif result is not None:
        problems.append(f"{paper.key}: a recorded result but no reproduction module")
    if result is not None:
        problems.extend(_check_result(paper, result))
    return problems


def check_catalog() -> list[str]:
    """All problems across the catalog (empty if identity, records, reproductions and
    recorded results agree)."""
    out: list[str] = []
    for p in PAPERS:
        out.extend(check_paper(p))
    return out


README_START = "<!-- catalog:start -->"
README_END = "<!-- catalog:end -->"


def markdown_table() -> str:
    """The catalog as a Markdown table (the README's copy is generated from this)."""
    rows = ["| # | paper | year | family | status | measured |", "|---|---|---|---|---|---|"]
    for p in PAPERS:
        num = "base" if p.baseline else f"{p.number:02d}"
        rows.append(f"| {num} | {p.title} | {p.year} | {p.family} | {p.status} | {p.measured} |")
    return "\n".join(rows)


def replace_block(text: str, start: str, end: str, body: str) -> str:
    """Replace what lies between the ``start`` and ``end`` markers of ``text`` with ``body``."""
    try:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
    except ValueError:
        raise ValueError(f"the file has no {start} ... {end} block") from None
    return f"{head}{start}\n{body}\n{end}{tail}"


def update_markdown_block(text: str) -> str:
    """Replace the text between :data:`README_START` and :data:`README_END` with the table."""
    return replace_block(text, README_START, README_END, markdown_table())
