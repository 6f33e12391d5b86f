"""The FedAvg Flower app over the in-process fake ``Grid``, shared by the Flower
FedAvg tests: four nodes with awkward ids, each holding one data partition."""

from __future__ import annotations

from flwr.clientapp import ClientApp

from protocols.flower import secure_train
from protocols.flower.fedavg import train_on_node
from protocols.flower.testing import FakeGrid

IDS = [5, 2**63 + 1, 0, 77]


def app_for(node: int) -> ClientApp:
    """The FedAvg ClientApp: local training behind the secure-aggregation mod."""
    app = ClientApp()

    @app.train()
    def train(msg, context):
        return train_on_node(msg, context)

    secure_train(app, train)
    return app


def grid(run_config, faults=()) -> FakeGrid:
    """A fake Grid of the FedAvg app on :data:`IDS`, node i holding partition i."""
    return FakeGrid(app_for, list(IDS), faults=list(faults), run_config=run_config,
                    node_config={n: {"partition-id": i, "num-partitions": len(IDS)}
                                 for i, n in enumerate(IDS)})
