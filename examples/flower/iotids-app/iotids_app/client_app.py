"""A FAB needs a ClientApp; iotids nodes are Rust SuperNodes (`iotids flower device|edge`)
that answer the ServerApp's messages themselves, so this one never runs on them."""

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    raise RuntimeError(
        "iotids nodes are Rust SuperNodes: start them with `iotids flower device` or "
        "`iotids flower edge`, not flower-supernode"
    )
