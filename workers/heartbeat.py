"""A background beat: keeps a running job's row (or a worker's row) fresh between progress
reports. The interval is studio.jobs.heartbeat_seconds() (BARK_STUDIO_HEARTBEAT_S)."""
from __future__ import annotations

import logging
import threading
from typing import Callable

from studio.jobs import heartbeat_seconds

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Calls `beat()` every `every` seconds until stopped. A failed beat is retried next time."""

    def __init__(self, beat: Callable[[], object], name: str, every: float | None = None):
        super().__init__(daemon=True, name=name)
        self.beat, self.every, self._stop_event = beat, every or heartbeat_seconds(), threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - a missed beat is retried next interval
                log.warning("%s failed", self.name, exc_info=True)

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=self.every + 1)
