"""ClientApp: local training; its update leaves the node only masked."""

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from protocols.flower import secure_train
from protocols.flower.fedavg import train_on_node
from protocols.flower.paillier import node_options

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    return train_on_node(msg, context)


# SecAgg / SecAgg+ and threshold Paillier (its files named in the node config)
secure_train(app, train, **node_options())
