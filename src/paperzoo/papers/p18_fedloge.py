"""Record of paper 18, FedLoGe (Xiao et al., ICLR 2024)."""

from paperzoo.papers import Record

RECORD = Record(
    number=18,
    summary=(
        "Federated learning when the union of the clients' data is long-tailed and each client is label-skewed: "
        "one shared backbone trained through a fixed sparse simplex-ETF classifier (SSE-C), an auxiliary global "
        "head and a local head per client on the detached features; after training, GA-FR re-normalises the "
        "global head's rows (generic model) and LA-FR gives each client the global directions scaled by its local "
        "row norms, added to its local head (personalised models). A Flower strategy + ClientApp."
    ),
    components=(
        "paperzoo.models.etf.simplex_etf",
        "paperzoo.models.etf.sparse_etf",
        "paperzoo.models.etf.FixedLinearClassifier",
        "paperzoo.federated.fedloge.FedLoGeModel",
        "paperzoo.federated.fedloge.fedloge_local_update",
        "paperzoo.federated.fedloge.ga_fr",
        "paperzoo.federated.fedloge.la_fr",
        "paperzoo.federated.fedloge.personalized_logits",
        "paperzoo.federated.fedloge.FedLoGeStrategy",
        "paperzoo.federated.fedloge.fedloge_apps",
        "paperzoo.federated.fedloge.shot_split",
        "paperzoo.federated.fedloge.local_test_indices",
    ),
    usage="""\
import torch
from paperzoo.models.etf import sparse_etf
from paperzoo.federated.fedloge import ga_fr, la_fr
w = sparse_etf(16, 4, sparsity=0.6, target_norm=1.0, steps=200, lr=1e-3)  # (C, d) SSE-C weight
assert int((w == 0).sum()) >= int(0.6 * 16 * 4)  # 60 % of the entries are zero
g_aux, local = torch.randn(4, 16), torch.randn(4, 16)
w_ga, _ = ga_fr(g_aux, None, scale=1.7)  # generic head: every row has norm 1.7
w_la, _ = la_fr(g_aux, None, local)  # personalised: global rows scaled by the local row norms
assert torch.allclose(w_ga.norm(dim=1), torch.full((4,), 1.7))
""",
    paper_result=(
        "FedLoGe beats state-of-the-art personalised-FL and federated long-tail methods in both generic and "
        "personalised accuracy on CIFAR-10/100-LT, ImageNet-LT and iNaturalist-User-160k (table values "
        "unconfirmed; the official logs give e.g. CIFAR-100-LT, 20 clients, alpha 0.5, IF 0.02: 46.7 generic / "
        "69.5 personalised vs FedAvg 42.4 / 59.9)"
    ),
)
