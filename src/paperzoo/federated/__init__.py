"""Federated learning on Flower: partitions, the run entry point, FedAvg / FedProx, and the
methods of the papers as Flower strategies and ``ClientApp`` s.

- :mod:`paperzoo.federated.partition`: Dirichlet label skew, IID splits, labelled masks, and the
  check every entry point runs (no empty client).
- :mod:`paperzoo.federated.flower`: :func:`run_federation`, the one way to run a pair of Flower
  apps (in process, or in Flower's simulation engine), and the state helpers.
- :mod:`paperzoo.federated.baselines`: FedAvg and FedProx apps for any classification model, with
  server-side evaluation and a per-round history, and the plain-loop reference.
- :mod:`paperzoo.federated.apps`: module-level FedAvg apps driven by the run config, for a real
  deployment (``flwr run`` against a SuperLink and SuperNodes).

The methods of the papers are modules of this package, imported by their module path.
"""

from paperzoo.federated.baselines import (
    FederatedData,
    FederatedHistory,
    LocalTraining,
    client_seed,
    evaluate_accuracy,
    fedavg_apps,
    fedavg_reference,
    local_train,
)
from paperzoo.federated.flower import (
    FLOWER_VERSION,
    InProcessGrid,
    arrays_of,
    load_arrays,
    load_state,
    partition_id,
    run_federation,
    save_state,
)
from paperzoo.federated.partition import check_partitions, dirichlet_partition, iid_partition, labelled_mask

__all__ = [
    "FLOWER_VERSION",
    "FederatedData",
    "FederatedHistory",
    "InProcessGrid",
    "LocalTraining",
    "arrays_of",
    "check_partitions",
    "client_seed",
    "dirichlet_partition",
    "evaluate_accuracy",
    "fedavg_apps",
    "fedavg_reference",
    "iid_partition",
    "labelled_mask",
    "load_arrays",
    "load_state",
    "local_train",
    "partition_id",
    "run_federation",
    "save_state",
]
