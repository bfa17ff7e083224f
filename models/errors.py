"""Errors the model core raises for input a user can fix. studio/ turns them into UserError.

models/ never imports studio/, so it has its own small hierarchy; every message names the
file or model and the reason, in one line."""


class ModelInputError(ValueError):
    """Bad input to the model core: wrong shape, too long, unreadable file, unknown name."""


class MissingWeightsError(ModelInputError):
    """Weights are not on disk and cannot be downloaded (offline)."""

    def __init__(self, model_id: str, preset: str | None = None, reason: str = "", message: str | None = None):
        self.model_id = model_id
        hint = f"bark-studio models download {preset or model_id}"
        detail = f" ({reason})" if reason else ""
        super().__init__(message or
                         f"weights for {model_id!r} are not on this machine{detail}; "
                         f"run `{hint}` on a machine with internet first")
