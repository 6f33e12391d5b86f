"""ClientApp: a train function that returns this node's known update, secured."""

from __future__ import annotations

from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from protocols.flower import secure_train
from protocols.flower.paillier import node_options

from .common import update_of

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    cfg = msg.content["config"]
    update = update_of(context.node_id, int(cfg["session"]), int(cfg["dimension"]))
    return Message(RecordDict({"arrays": ArrayRecord({"update": Array(update)})}),
                   reply_to=msg)


# SecAgg / SecAgg+ (identity registry in malicious mode) and threshold Paillier
secure_train(app, train, **node_options())
