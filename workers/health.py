"""`python -m workers.health`: exit 0 when a worker on this host beat its heartbeat recently
(the container healthcheck of a `bark-studio worker`), else 1 with the reason."""
from __future__ import annotations

import socket
import sys

from studio import fleet
from studio.workspace import Workspace


def main() -> int:
    ws = Workspace.resolve()
    host = socket.gethostname()
    alive = [w for w in fleet.live_workers(ws.db) if w["host"] == host]
    if not alive:
        print(f"no live worker on {host} in {ws.root}", file=sys.stderr)
        return 1
    print(f"worker alive: {', '.join(fleet.describe(w) for w in alive)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
