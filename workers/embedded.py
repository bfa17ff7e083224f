"""The worker `bark-studio serve` starts beside the web process, and its supervisor.

The worker is a separate process (`bark-studio worker --parent-pid SERVER`), so a crash while
decoding untrusted audio or running a model cannot take the studio down. A thread in the server
restarts it when it dies, waiting longer after each quick death (a worker that cannot start must
not spin), and the worker stops by itself when the server is gone (see workers.consumer)."""
from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from studio.workspace import Workspace

log = logging.getLogger(__name__)
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before the 1st, 2nd, ... restart in a row
HEALTHY_RUN_SECONDS = 60.0  # a worker that ran this long resets the back-off
STOP_GRACE = ((None, 5.0), (signal.SIGINT, 30.0))  # a second SIGINT would stop it mid-step


class EmbeddedWorker:
    def __init__(self, ws: Workspace, workers: int):
        self.ws, self.workers = ws, workers
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> "EmbeddedWorker":
        self._spawn()
        threading.Thread(target=self._supervise, daemon=True, name="embedded-worker-supervisor").start()
        atexit.register(self.stop)
        return self

    def _spawn(self) -> None:
        # Same process group as the server: Ctrl-C in the terminal reaches the worker too, and it
        # checkpoints and stops; a worker in its own session outlived the studio.
        with self._lock:
            if self._stopping.is_set():
                return
            self.proc = subprocess.Popen([sys.executable, "-m", "studio.cli", "--home", str(self.ws.root), "worker",
                                          "--workers", str(self.workers), "--parent-pid", str(os.getpid())])

    def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            rc = self.proc.wait()
            if self._stopping.is_set():
                return
            failures = 0 if time.monotonic() - started >= HEALTHY_RUN_SECONDS else failures + 1
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            print(f"the embedded worker exited with status {rc}; restarting it in {delay:.0f} s",
                  file=sys.stderr, flush=True)
            if self._stopping.wait(delay):
                return
            self._spawn()
            self.restarts += 1

    def stop(self) -> None:
        """Ask the worker to stop (its running jobs checkpoint), then make sure it has."""
        with self._lock:
            self._stopping.set()
            proc = self.proc
        if proc is None:
            return
        for sig, grace in STOP_GRACE:
            if proc.poll() is not None:
                return
            if sig is not None:
                proc.send_signal(sig)
            try:
                proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                pass
        proc.kill()
