"""Record of paper 36, the identity-level machine unlearning benchmark (MUFAC / MUCAC, NoMUS; Choi & Na, 2023)."""

from paperzoo.papers import Method, Record


def _m(name: str, factory: str, kwargs: dict, description: str) -> Method:
    return Method(name, "unlearning", f"paperzoo.unlearning.{factory}", kwargs, description)


RECORD = Record(
    number=36,
    summary=(
        "A task-agnostic, identity-level unlearning benchmark: a model trained on a task whose labels do not depend "
        "on any single person (age groups, facial attributes) must forget every photo of some training identities. "
        "Forget / retain / test / unseen splits are identity-disjoint; forgetting is the accuracy of a loss-based "
        "logistic-regression membership-inference attack telling forget-set photos from photos of never-seen people "
        "(0.5 ideal), combined with test accuracy into NoMUS = 0.5 acc + 0.5 (1 - 2|MIA - 0.5|). Baselines: "
        "fine-tuning, CF-k, NegGrad, advanced NegGrad, UNSIR and SCRUB against the retrain-from-scratch oracle."
    ),
    components=(
        "paperzoo.unlearning.identity.IdentitySplits",
        "paperzoo.unlearning.identity.IdentityProtocol",
        "paperzoo.unlearning.identity.membership_inference_attack",
        "paperzoo.unlearning.identity.nomus",
        "paperzoo.unlearning.identity.evaluate_unlearning",
        "paperzoo.unlearning.neggrad.NegGrad",
        "paperzoo.unlearning.neggrad.NegGradPlus",
        "paperzoo.unlearning.scrub.SCRUB",
        "paperzoo.unlearning.unsir.UNSIR",
        "paperzoo.unlearning.cfk.CFk",
        "paperzoo.data.identity_proxy.make_identity_proxy",
    ),
    usage="""\
import numpy as np
from paperzoo.unlearning.identity import IdentitySplits, membership_inference_attack, nomus
ids = np.repeat(np.arange(40), 5)  # 40 identities, 5 photos each
s = IdentitySplits.random_identities(ids, n_train=20, n_forget=5, n_test=10, n_unseen=10, seed=0)
assert s.sizes()["forget"] == 25 and not (s.forget & s.retain).any()
rng = np.random.default_rng(0)
mia = membership_inference_attack(rng.gamma(2.0, size=200), rng.gamma(2.0, size=200))
assert abs(mia - 0.5) < 0.1 and abs(nomus(0.5951, 0.5 + 0.2136) - 0.58395) < 1e-9
""",
    paper_result=(
        "MUFAC (8-class age, ResNet-18 from scratch): the retrained oracle has the best NoMUS (0.6995 vs 0.5839 for "
        "the original, |MIA - 0.5| 0.0445 vs 0.2136) despite lower test accuracy; fine-tuning and CF-3 barely move "
        "the MIA, NegGrad forgets but drops test accuracy to 0.40, advanced NegGrad (0.6863) and SCRUB (0.6577) are "
        "the best trade-offs but stay below the oracle"
    ),
    methods=(
        _m(
            "mufac-finetune",
            "cfk:CFk",
            {"k": None},
            "the benchmark's fine-tuning: retain set, plain SGD 1e-3, 2 epochs",
        ),
        _m("cf-k", "cfk:CFk", {"k": 2}, "CF-k: fine-tune only the last k=2 layers on the retain set (plain SGD 1e-3)"),
        _m("neggrad", "neggrad:NegGrad", {}, "NegGrad: ascent on forget batches paced by retain batches (SGD 1e-3)"),
        _m("neggrad-plus", "neggrad:NegGradPlus", {}, "advanced NegGrad: CE(retain) - CE(forget) per step (SGD 1e-3)"),
        _m("unsir", "unsir:UNSIR", {}, "UNSIR: error-maximising noise, impair (retain + noise) then repair epoch"),
        _m("scrub", "scrub:SCRUB", {}, "SCRUB (benchmark version): retain CE + KL to the teacher, forget -KL, T=4"),
    ),
)
