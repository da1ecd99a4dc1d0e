"""The one way paperzoo runs a Flower app, and the small helpers its apps share.

Federated methods here are Flower (``flwr``) apps: a ``ServerApp`` whose main function runs a
strategy (``flwr.serverapp.strategy.FedAvg`` or a subclass) and a ``ClientApp`` with ``train`` /
``evaluate`` handlers. The same two objects run

- in process (``backend="inprocess"``): :class:`InProcessGrid` delivers each message straight to
  the ``ClientApp`` in this process, one client after another. No Ray, no network; what tests and
  the reproductions use, so that results are deterministic and start in a second;
- in Flower's simulation engine (``backend="simulation"``): ``flwr.simulation.run_simulation`` on
  Ray, clients as parallel actors (about a minute of start-up on 2 cores, then ~1 s per round);
- on a real deployment (a SuperLink and SuperNodes as separate processes; see
  :mod:`paperzoo.federated.apps` for module-level apps that ``flwr run`` can load).

:func:`run_federation` is the single entry point, so that a change of Flower's API is a change
here. Flower is pinned to 1.42.0: :class:`InProcessGrid` sets the sender identity through
``flwr.supercore.task_identity.TaskIdentity``, which the Flower runtimes set themselves and which is
internal API.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import torch
from flwr.app import ArrayRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

__all__ = [
    "FLOWER_VERSION",
    "InProcessGrid",
    "arrays_of",
    "load_arrays",
    "load_state",
    "partition_id",
    "run_federation",
    "save_state",
]

#: The Flower release this module is written against.
FLOWER_VERSION = "1.42.0"


def arrays_of(module: torch.nn.Module) -> ArrayRecord:
    """``module``'s state (parameters and buffers) as a Flower ``ArrayRecord``."""
    return ArrayRecord(module.state_dict())


def load_arrays(module: torch.nn.Module, arrays: ArrayRecord) -> None:
    """Load an ``ArrayRecord`` made by :func:`arrays_of` into ``module`` (strict)."""
    module.load_state_dict(arrays.to_torch_state_dict(), strict=True)


def save_state(context: Context, key: str, module: torch.nn.Module) -> None:
    """Keep ``module``'s state in the client's private ``context.state`` under ``key``: it stays on
    the node across rounds and never goes to the server (a personalised head, a local model)."""
    context.state[key] = arrays_of(module)


def load_state(context: Context, key: str, module: torch.nn.Module) -> bool:
    """Load the private state saved under ``key`` into ``module``; False (module untouched) if the
    client has none yet (its first round)."""
    if key not in context.state:
        return False
    record = context.state[key]
    if not isinstance(record, ArrayRecord):
        raise TypeError(f"context.state[{key!r}] is a {type(record).__name__}, not an ArrayRecord")
    load_arrays(module, record)
    return True


def partition_id(context: Context) -> int:
    """The client's partition (0-based), from the node config every runtime sets."""
    return int(context.node_config["partition-id"])


class InProcessGrid(Grid):
    """A ``Grid`` that delivers messages to a ``ClientApp`` in this process.

    Node ``k`` (ids ``1..K``) is partition ``k - 1``; its ``Context`` (and so its private
    ``context.state``) persists across rounds, as on a SuperNode. Clients run one after another, in
    node order, so a run is deterministic.
    """

    def __init__(self, client_app: ClientApp, num_clients: int, run_config: Mapping[str, Any] | None = None) -> None:
        from flwr.supercore.run import Run

        if num_clients < 1:
            raise ValueError(f"num_clients must be >= 1, got {num_clients}")
        self.client_app = client_app
        self.run_config = dict(run_config or {})
        self.contexts = {
            k: Context(
                run_id=1,
                node_id=k,
                node_config={"partition-id": k - 1, "num-partitions": num_clients},
                state=RecordDict(),
                run_config=dict(self.run_config),
            )
            for k in range(1, num_clients + 1)
        }
        self._run = Run.create_empty(run_id=1)
        self._replies: dict[str, Message] = {}

    def set_run(self, run: Any) -> None:
        self._run = run

    @property
    def run(self) -> Any:
        return self._run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        return Message(content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id, ttl=ttl)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            meta = message.metadata
            meta._message_id = uuid.uuid4().hex
            meta._src_node_id = 0
            meta._run_id = 1
            self._replies[meta.message_id] = self.client_app(message, self.contexts[meta.dst_node_id])
            ids.append(meta.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))


def run_federation(
    server_app: ServerApp,
    client_app: ClientApp,
    num_clients: int,
    *,
    backend: Literal["inprocess", "simulation"] = "inprocess",
    run_config: Mapping[str, Any] | None = None,
    num_cpus: int = 2,
    verbose: bool = False,
) -> None:
    """Run ``server_app`` against ``num_clients`` clients running ``client_app``.

    Args:
        server_app, client_app: Flower apps (the server's main function runs the strategy).
        num_clients: the number of SuperNodes; client ``k`` gets ``partition-id`` k (0-based).
        backend: ``"inprocess"`` (:class:`InProcessGrid`; deterministic, no Ray) or
            ``"simulation"`` (Flower's simulation engine on Ray, ``num_cpus`` actors of one CPU).
        run_config: the run config both apps read from ``context.run_config`` (in process only;
            the simulation engine takes it from the app's ``pyproject.toml``).
        verbose: keep Flower's per-round INFO log (off: warnings and errors only).

    Results come back the way the apps return them: a server app built by
    :mod:`paperzoo.federated.baselines` records them in its history object.
    """
    logging.getLogger("flwr").setLevel(logging.INFO if verbose else logging.WARNING)
    if backend == "inprocess":
        from flwr.supercore.task_identity import TaskIdentity

        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
        grid = InProcessGrid(client_app, num_clients, run_config)
        server_context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=grid.run_config)
        server_app(grid, server_context)
    elif backend == "simulation":
        if run_config:
            raise ValueError("run_config is given to the simulation engine through the app's pyproject.toml")
        from flwr.simulation import run_simulation

        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=num_clients,
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                "init_args": {"num_cpus": num_cpus, "include_dashboard": False},
            },
        )
    else:
        raise ValueError(f"backend must be 'inprocess' or 'simulation', got {backend!r}")
