"""The paper catalog: one record per paper of the list (plus shared baselines).

The catalog is the single place that maps papers to components. A record's ``status`` is a
claim that :func:`check_catalog` verifies against the code:

* ``planned``: nothing is implemented yet;
* ``implemented``: every listed component imports;
* ``reproduced``: implemented, and ``reproduction`` names a module under
  :mod:`paperzoo.reproductions` that exposes ``run``, and ``result`` summarises what its full
  run measured.

Status is never aspirational: the test suite runs :func:`check_catalog`.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from typing import Literal

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
    status: Status = "planned"
    components: tuple[str, ...] = ()
    reproduction: str | None = None
    result: str | None = None
    summary: str | None = None
    usage: str | None = None
    baseline: bool = False
    builds_on: tuple[int, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """``NN-slug``, the name of the paper's card and results folder."""
        return f"{self.number:02d}-{self.slug}"

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["key"] = self.key
        return d


def _p(number: int, slug: str, title: str, year: int, family: str, **kw: object) -> Paper:
    return Paper(number, slug, title, year, family, **kw)  # type: ignore[arg-type]


PAPERS: tuple[Paper, ...] = (
    _p(
        0,
        "simgcd-baseline",
        "Parametric Classification for Generalized Category Discovery: A Baseline Study (SimGCD)",
        2023,
        "discovery",
        baseline=True,
    ),
    _p(
        1,
        "proton-prototype-node-gnn-ear-recognition",
        "ProtoN: Prototype Node Graph Neural Network for Unconstrained Multi-Impression Ear Recognition",
        2025,
        "fewshot",
    ),
    _p(
        2,
        "outfittransformer",
        "OutfitTransformer: Learning Outfit Representations for Fashion Recommendation",
        2022,
        "retrieval",
    ),
    _p(
        3,
        "concept-centric-transformers",
        "Concept-Centric Transformers: Enhancing Model Interpretability through Object-Centric Concept Learning within a Shared Global Workspace",
        2023,
        "interpretability",
    ),
    _p(
        4,
        "degla-decoupled-global-local-alignment",
        "Decoupled Global-Local Alignment for Improving Compositional Understanding",
        2025,
        "embedding",
    ),
    _p(
        5,
        "z-loss",
        "The Z-loss: a shift and scale invariant classification loss belonging to the Spherical Family",
        2016,
        "losses",
        status="reproduced",
        components=(
            "paperzoo.losses.ZLoss",
            "paperzoo.losses.z_loss",
            "paperzoo.losses.z_loss_from_stats",
            "paperzoo.losses.spherical_stats",
            "paperzoo.losses.SphericalLinear",
        ),
        reproduction="paperzoo.reproductions.p05_z_loss",
        result=(
            "300-class synthetic top-1/5/20: Z-loss 0.597/0.813/0.924 vs MSE 0.203/0.437/0.643 vs CE 0.624/0.833/0.943; "
            "Fashion-MNIST top-3 Z 0.981 vs CE 0.979 (3 seeds). Inconclusive: far above MSE, not above CE at large k."
        ),
        summary=(
            "Z-loss standardises the logits across classes and applies a scaled softplus to the target's z-score, "
            "making it shift- and scale-invariant and dependent only on (o_c, sum o, sum o^2). That places it in the "
            "spherical family, whose output-layer SGD step costs O(d^2) per example whatever the number of classes "
            "(SphericalLinear)."
        ),
        usage=(
            "import torch\n"
            "from paperzoo.losses import ZLoss\n"
            "logits, target = torch.randn(8, 100), torch.randint(0, 100, (8,))\n"
            "loss = ZLoss(a=1.0, b=1.0)(logits, target)\n"
            "assert torch.allclose(loss, ZLoss()(3 * logits - 5, target), atol=1e-5)"
        ),
    ),
    _p(
        6,
        "glocal-information-bottleneck-imputation",
        "Glocal Information Bottleneck for Time Series Imputation",
        2025,
        "timeseries",
    ),
    _p(
        7,
        "legogcd",
        "Solving the Catastrophic Forgetting Problem in Generalized Category Discovery",
        2025,
        "discovery",
        builds_on=(0,),
    ),
    _p(
        8,
        "unpg-unified-negative-pair-generation",
        "Unified Negative Pair Generation toward Well-discriminative Feature Space for Face Recognition",
        2022,
        "metric-learning",
    ),
    _p(
        9,
        "discriminative-vs-generative",
        "Revisiting Discriminative vs. Generative Classifiers: Theory and Implications",
        2023,
        "theory",
        status="reproduced",
        components=(
            "paperzoo.models.SharedVarianceGaussianNB",
            "paperzoo.analysis.learning_curves.learning_curve_comparison",
            "paperzoo.analysis.learning_curves.samples_to_reach",
            "paperzoo.analysis.learning_curves.feature_statistics",
            "paperzoo.analysis.learning_curves.default_classifiers",
            "paperzoo.models.pretrained.efficientnet_lite0_features",
            "paperzoo.data.make_dis_gen_gaussian",
        ),
        reproduction="paperzoo.reproductions.p09_discriminative_vs_generative",
        result=(
            "Simulation n=100: NB reaches Bayes+0.01 at m~6 (K=2) / 22 (K=3) vs LR 128 / 331; digits m=30 NB 0.313 vs "
            "LR 0.320, m=1000 0.116 vs 0.047; EfficientNet-Lite0 Fashion-MNIST features: LR better at every m (m=20 "
            "0.666 vs 0.591, m=2000 0.272 vs 0.189) (3 seeds). Inconclusive: 4/5 claims; the two regimes do not appear "
            "on the frozen features."
        ),
        summary=(
            "Compares multiclass Gaussian naive Bayes with a class-shared diagonal covariance (a linear, generative "
            "classifier) with logistic regression for linear evaluation. NB needs O(log n) samples to approach its "
            "asymptotic error, LR needs O(n): NB converges faster and can win with few samples, LR wins asymptotically."
        ),
        usage=(
            "from paperzoo.analysis.learning_curves import default_classifiers, learning_curve_comparison\n"
            "from paperzoo.data import make_dis_gen_gaussian\n"
            "X, y = make_dis_gen_gaussian(100, 2, 5000, seed=0)\n"
            "Xt, yt = make_dis_gen_gaussian(100, 2, 2000, seed=1)\n"
            "curves = learning_curve_comparison(X, y, Xt, yt, [4, 10, 50, 200], default_classifiers(), repeats=3, minmax=False)\n"
            "print({k: v.round(3) for k, v in curves['mean'].items()})"
        ),
    ),
    _p(
        10,
        "neural-collapse-deep-linear",
        "Neural Collapse in Deep Linear Networks: From Balanced to Imbalanced Data",
        2023,
        "theory",
    ),
    _p(11, "anyloss", "AnyLoss: Transforming Classification Metrics into Loss Functions", 2024, "losses"),
    _p(
        12,
        "ihomer-online-label-partitioning",
        "Online hierarchical partitioning of the output space in extreme multi-label data stream",
        2025,
        "multilabel",
    ),
    _p(
        13,
        "ldr-losses",
        "Label Distributionally Robust Losses for Multi-class Classification: Consistency, Robustness and Adaptivity",
        2021,
        "losses",
    ),
    _p(
        14,
        "rcal-noisy-long-tail",
        "When Noisy Labels Meet Long Tail Dilemmas: A Representation Calibration Method",
        2022,
        "robustness",
    ),
    _p(15, "glc-upcycling", "Upcycling Models under Domain and Category Shift", 2023, "adaptation"),
    _p(
        16,
        "modhifi",
        "ModHiFi: Identifying High Fidelity predictive components for Model Modification",
        2025,
        "pruning",
    ),
    _p(
        17,
        "logistic-regression-large-step-sizes",
        "From Logistic Regression to the Perceptron Algorithm: Exploring Gradient Descent with Large Step Sizes",
        2024,
        "theory",
    ),
    _p(18, "fedloge", "FedLoGe: Joint Local and Generic Federated Learning under Long-tailed Data", 2024, "federated"),
    _p(
        19,
        "wide-deep-networks-optimal-classification",
        "Wide and Deep Neural Networks Achieve Optimality for Classification",
        2022,
        "theory",
    ),
    _p(
        20,
        "local-or-global-federated-limited-labels",
        "Local or Global: Selective Knowledge Assimilation for Federated Learning with Limited Labels",
        2023,
        "federated",
    ),
    _p(
        21,
        "fedld-loss-decomposition",
        "Tackling Data Heterogeneity in Federated Learning via Loss Decomposition",
        2024,
        "federated",
    ),
    _p(
        22,
        "global-magnitude-pruning",
        "Is Complexity Required for Neural Network Pruning? A Case Study on Global Magnitude Pruning",
        2022,
        "pruning",
    ),
    _p(
        23,
        "foa-attack-mllm",
        "Adversarial Attacks against Closed-Source MLLMs via Feature Optimal Alignment",
        2025,
        "adversarial",
    ),
    _p(
        24,
        "protogcd",
        "ProtoGCD: Unified and Unbiased Prototype Learning for Generalized Category Discovery",
        2025,
        "discovery",
        builds_on=(0,),
    ),
    _p(
        25,
        "dual-head-kd",
        "Dual-Head Knowledge Distillation: Enhancing Logits Utilization with an Auxiliary Head",
        2024,
        "distillation",
    ),
    _p(26, "loki-geometry-aware-adaptation", "Geometry-Aware Adaptation for Pretrained Models", 2023, "adaptation"),
    _p(27, "hypcd", "Hyperbolic Category Discovery", 2025, "discovery", builds_on=(0,)),
    _p(
        28,
        "multi-similarity-loss",
        "Multi-Similarity Loss with General Pair Weighting for Deep Metric Learning",
        2019,
        "metric-learning",
        status="reproduced",
        components=(
            "paperzoo.losses.MultiSimilarityLoss",
            "paperzoo.losses.multi_similarity.multi_similarity_loss",
            "paperzoo.losses.multi_similarity.ms_pair_masks",
            "paperzoo.analysis.pair_weighting.ms_pair_weights",
            "paperzoo.analysis.pair_weighting.gpw_pair_weights",
            "paperzoo.analysis.pair_weighting.REFERENCE_PAIR_LOSSES",
        ),
        reproduction="paperzoo.reproductions.p28_multi_similarity",
        result=(
            "Unseen-class retrieval R@1, union30 / digits (3 seeds): MS+mining 0.812/0.951 vs MS no mining 0.779/0.845, "
            "contrastive 0.780/0.870, triplet 0.736/0.928. Holds. Fused loss 0.20x/0.12x PML's time at B=512/2048."
        ),
        summary=(
            "General Pair Weighting views every pair-based metric loss through the weight dL/dS_ij it gives each pair. "
            "The MS loss mines hard pairs by relative similarity, then weights them with soft log-sum-exp terms. Here it "
            "is a pytorch-metric-learning loss whose fused forward and closed-form backward match PML's value and run "
            "several times faster, plus closed-form and autograd pair-weight tools."
        ),
        usage=(
            "import torch\n"
            "from paperzoo.losses import MultiSimilarityLoss\n"
            "from paperzoo.analysis.pair_weighting import ms_pair_weights\n"
            "emb, labels = torch.randn(60, 64, requires_grad=True), torch.arange(60) // 5  # 12 classes x 5\n"
            "loss = MultiSimilarityLoss()(emb, labels)  # alpha=2, beta=50, base=0.5, epsilon=0.1\n"
            "loss.backward()\n"
            "x = torch.nn.functional.normalize(emb.detach(), dim=1)\n"
            "w_pos, w_neg = ms_pair_weights(x @ x.T, labels)  # dL/dS = (w_neg - w_pos) / 60"
        ),
    ),
    _p(
        29,
        "cfcd-coarse-to-fine-single-stage-retrieval",
        "Coarse-to-Fine: Learning Compact Discriminative Representation for Single-Stage Image Retrieval",
        2023,
        "retrieval",
    ),
    _p(30, "ood-unlabeled-rss", "Out-Of-Domain Unlabeled Data Improves Generalization", 2023, "theory"),
    _p(
        31,
        "loss-landscape-hessian-generalization",
        "Investigating generalization capabilities of neural networks by means of loss landscapes and Hessian analysis",
        2024,
        "analysis",
    ),
    _p(
        32,
        "metrix-mixup-deep-metric-learning",
        "It Takes Two to Tango: Mixup for Deep Metric Learning",
        2021,
        "metric-learning",
    ),
    _p(
        33,
        "datasetequity",
        "DatasetEquity: Are All Samples Created Equal? In The Quest For Equity Within Datasets",
        2023,
        "reweighting",
    ),
    _p(
        34,
        "happy-cgcd",
        "Happy: A Debiased Learning Framework for Continual Generalized Category Discovery",
        2024,
        "discovery",
        builds_on=(0,),
    ),
    _p(35, "exact-inductive-bias", "Towards Exact Computation of Inductive Bias", 2024, "analysis"),
    _p(
        36,
        "mufac-unlearning-benchmark",
        "Towards Machine Unlearning Benchmarks: Forgetting the Personal Identities in Facial Recognition Systems",
        2023,
        "unlearning",
    ),
    _p(
        37,
        "susana-proto-triplet-icnn-losses",
        "SuSana Distancia is all you need: Enforcing class separability in metric learning via two novel distance-based loss functions for few-shot image classification",
        2023,
        "metric-learning",
    ),
    _p(
        38,
        "domainmix-generalizable-reid",
        "DomainMix: Learning Generalizable Person Re-Identification Without Human Annotations",
        2020,
        "adaptation",
    ),
    _p(
        39,
        "domain-penalisation",
        "Domain penalisation for improved Out-of-Distribution Generalisation",
        2024,
        "adaptation",
    ),
    _p(40, "unime-v2", "UniME-V2: MLLM-as-a-Judge for Universal Multimodal Embedding Learning", 2025, "embedding"),
    _p(
        41,
        "global-shape-bias",
        "Does resistance to style-transfer equal Global Shape Bias? Measuring network sensitivity to global shape configuration",
        2023,
        "analysis",
    ),
    _p(
        42,
        "label-agnostic-forgetting",
        "Label-Agnostic Forgetting: A Supervision-Free Unlearning in Deep Models",
        2024,
        "unlearning",
    ),
    _p(
        43,
        "kalm-embedding-v2",
        "KaLM-Embedding-V2: Superior Training Techniques and Data Inspire A Versatile Embedding Model",
        2025,
        "embedding",
    ),
    _p(44, "active-gcd", "Active Generalized Category Discovery", 2024, "discovery", builds_on=(0,)),
    _p(45, "attribute-to-delete", "Attribute-to-Delete: Machine Unlearning via Datamodel Matching", 2024, "unlearning"),
    _p(46, "latent-label-shift-ddfa", "Unsupervised Learning under Latent Label Shift", 2022, "adaptation"),
    _p(
        47,
        "one-step-gd-in-context-learner",
        "One Step of Gradient Descent is Provably the Optimal In-Context Learner with One Layer of Linear Self-Attention",
        2023,
        "theory",
    ),
    _p(48, "pu-mlc", "Positive Label Is All You Need for Multi-Label Classification", 2023, "multilabel"),
    _p(
        49,
        "aggregate-responses-bag-vs-instance",
        "Learning from Aggregate responses: Instance Level versus Bag Level Loss Functions",
        2024,
        "theory",
    ),
    _p(50, "mlcd", "Multi-label Cluster Discrimination for Visual Representation Learning", 2024, "embedding"),
    _p(
        51,
        "gpam-gaussian-prototype-adaptive-margin",
        "Few-shot Open Relation Extraction with Gaussian Prototype and Adaptive Margin",
        2024,
        "fewshot",
    ),
    _p(
        52,
        "superglobal-global-features-retrieval-reranking",
        "Global Features are All You Need for Image Retrieval and Reranking",
        2023,
        "retrieval",
    ),
    _p(
        53,
        "loss-based-sample-reweighting",
        "Dynamic Loss-Based Sample Reweighting for Improved Large Language Model Pretraining",
        2025,
        "reweighting",
    ),
)

_BY_NUMBER: dict[int, Paper] = {p.number: p for p in PAPERS}
_BY_SLUG: dict[str, Paper] = {p.slug: p for p in PAPERS}


def families() -> list[str]:
    """The families in catalog order, each once."""
    return list(dict.fromkeys(p.family for p in PAPERS))


def get(ref: int | str) -> Paper:
    """Look a paper up by number (``28``, ``"28"``, ``"028"``), slug, or ``NN-slug`` key."""
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
    """Import ``package.module.Name`` (or a module path) and return the object."""
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError:
        module, _, name = path.rpartition(".")
        if not module:
            raise
        return getattr(importlib.import_module(module), name)


def check_paper(paper: Paper) -> list[str]:
    """Problems that make ``paper.status`` a claim the code does not back (empty if none)."""
    problems: list[str] = []
    if paper.status == "planned":
        if paper.components or paper.reproduction or paper.result:
            problems.append(f"{paper.key}: planned but lists components/reproduction/result")
        return problems
    if not paper.components:
        problems.append(f"{paper.key}: {paper.status} but lists no component")
    for c in paper.components:
        try:
            resolve(c)
        except (ImportError, AttributeError) as exc:
            problems.append(f"{paper.key}: component {c} does not import ({exc})")
    if paper.status == "reproduced":
        if not paper.reproduction:
            problems.append(f"{paper.key}: reproduced but names no reproduction")
        else:
            try:
                mod = importlib.import_module(paper.reproduction)
            except ImportError as exc:
                problems.append(f"{paper.key}: reproduction {paper.reproduction} does not import ({exc})")
            else:
                if not callable(getattr(mod, "run", None)):
                    problems.append(f"{paper.key}: reproduction {paper.reproduction} has no run()")
                if getattr(mod, "PAPER", None) != paper.number:
                    problems.append(
                        f"{paper.key}: reproduction {paper.reproduction} is for paper {getattr(mod, 'PAPER', None)}"
                    )
        if not paper.result:
            problems.append(f"{paper.key}: reproduced but records no measured result")
    elif paper.reproduction:
        problems.append(f"{paper.key}: has a reproduction but status {paper.status}")
    return problems


def check_catalog() -> list[str]:
    """All status problems across the catalog (empty if every claim holds)."""
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
        rows.append(f"| {num} | {p.title} | {p.year} | {p.family} | {p.status} | {p.result or ''} |")
    return "\n".join(rows)


def update_markdown_block(text: str) -> str:
    """Replace the text between :data:`README_START` and :data:`README_END` with the table."""
    try:
        head, rest = text.split(README_START, 1)
        _, tail = rest.split(README_END, 1)
    except ValueError:
        raise ValueError(f"the file has no {README_START} ... {README_END} block") from None
    return f"{head}{README_START}\n{markdown_table()}\n{README_END}{tail}"
