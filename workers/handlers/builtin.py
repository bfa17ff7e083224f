"""Jobs that belong to no room: `noop` checks the queue end to end (used by `bark-studio jobs ping`)."""


def noop(ctx):
    ctx.progress(1.0, message="pong")
    return {"pong": True}
