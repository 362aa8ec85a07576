"""Placeholder ClientApp (a FAB needs one); the Rust SuperNodes never run it."""

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    raise RuntimeError("this federation's nodes are Rust SuperNodes")
