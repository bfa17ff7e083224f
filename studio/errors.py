"""Errors a user can act on. Their message is shown as is: one line, naming what was wrong."""
from __future__ import annotations

import errno
import os
import shutil

DISK_FULL = "the disk holding the workspace is full: free some space, then try again"
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NEARLY_EMPTY_BYTES = 1 << 20  # SQLite says "disk I/O error" when it cannot grow its shared-memory file


class UserError(Exception):
    """Bad input or an impossible request; shown to the user without a traceback."""


class NotFound(UserError):
    """A named thing (dataset, job, voice, adapter...) does not exist."""


class DiskFull(UserError):
    """The workspace's disk is full. Its message names no server path (the web UI shows it as is)."""

    def __init__(self, message: str = DISK_FULL):
        super().__init__(message)


def is_disk_full(exc: BaseException, where: str | os.PathLike | None = None) -> bool:
    """Whether `exc` (or an error it was raised from) means the disk is full: ENOSPC and kin, or
    SQLite's "database or disk is full"; its "disk I/O error" counts when `where` has (almost) no space left."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFull) or (isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS):
            return True
        text = str(exc).lower()
        if "database or disk is full" in text:
            return True
        if "disk i/o error" in text and where is not None:
            try:
                if shutil.disk_usage(where).free < _NEARLY_EMPTY_BYTES:
                    return True
            except OSError:
                pass
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "orig", None)
    return False
