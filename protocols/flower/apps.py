"""Ready Flower apps of this library, importable by reference from a ``pyproject.toml``::

    [tool.flwr.app.components]
    serverapp = "protocols.flower.apps:fedavg_server"
    clientapp = "protocols.flower.apps:fedavg_client"

``fedavg_server`` runs :func:`protocols.flower.fedavg.run_fedavg` with the run
config; ``fedavg_client`` trains on the node's partition and answers only
through the secure-aggregation mod. ``secagg demo``-style runs on a local
deployment use them (see :mod:`protocols.flower.demo`).
"""

from __future__ import annotations

import json

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from .client import secure_train
from .fedavg import run_fedavg, train_on_node
from .paillier import node_options

__all__ = ["PROGRESS_PREFIX", "fedavg_client", "fedavg_server"]

#: lines of the ServerApp's output that carry one round's record as JSON
PROGRESS_PREFIX = "secagg-round "

fedavg_server = ServerApp()
fedavg_client = ClientApp()


@fedavg_server.main()
def _server_main(grid: Grid, context: Context) -> None:
    from dataclasses import asdict

    def show(rec: object) -> None:
        print(PROGRESS_PREFIX + json.dumps(asdict(rec)), flush=True)  # type: ignore[call-overload]

    run_fedavg(grid, context.run_config, on_round=show)


@fedavg_client.train()
def _train(msg: Message, context: Context) -> Message:
    return train_on_node(msg, context)


# SecAgg / SecAgg+ (identity registry in malicious mode) and threshold Paillier
secure_train(fedavg_client, _train, **node_options())
