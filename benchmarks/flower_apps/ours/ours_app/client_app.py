"""A train function returning a fixed vector, secured by this library's mod (the node's
identity files, when its node config names them, serve malicious-mode sessions; its
Paillier public material and key share files serve threshold Paillier sessions)."""

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from protocols.flower import secure_train
from protocols.flower.paillier import node_options

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    d = int(msg.content["config"]["dimension"])
    update = np.sin(np.arange(d, dtype=np.float64) * 0.013 + (context.node_id % 100_003) * 1e-3)
    return Message(RecordDict({"arrays": ArrayRecord({"u": Array(update.astype(np.float32))})}),
                   reply_to=msg)


# SecAgg+ (identity registry in malicious mode) and threshold Paillier
secure_train(app, train, **node_options())
