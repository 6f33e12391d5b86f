"""A NumPyClient whose fit returns a fixed vector of the configured dimension."""

import numpy as np
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import Context


class Client(NumPyClient):
    def __init__(self, node_id: int) -> None:
        self.node_id = node_id

    def fit(self, parameters, config):
        d = parameters[0].size
        update = np.sin(np.arange(d, dtype=np.float64) * 0.013 + (self.node_id % 100_003) * 1e-3)
        return [update.astype(np.float32)], 1, {}


def client_fn(context: Context):
    return Client(context.node_id).to_client()


app = ClientApp(client_fn=client_fn, mods=[secaggplus_mod])
