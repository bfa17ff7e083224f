"""Errors a user can act on. Their message is shown as is: one line, naming what was wrong."""


class UserError(Exception):
    """Bad input or an impossible request; shown to the user without a traceback."""


class NotFound(UserError):
    """A named thing (dataset, job, voice, adapter...) does not exist."""
