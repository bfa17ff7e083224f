"""Where one training process stands among the ranks of a job: `SingleProcess` (the recipe in one
process, every hook the identity) is what models.training.TrainingRecipe asks; models.distributed's
`Group` answers the same questions for one rank of several. Kept apart from models.distributed so
the recipe imports it without importing the launcher (which imports the recipe)."""
from __future__ import annotations

import contextlib

import torch


class SingleProcess:
    """The recipe in one process: every hook is the identity."""
    rank, world, is_main = 0, 1, True

    def wrap(self, bark, modules: dict, objectives: dict, method: str) -> None:
        self.modules, self.objectives = modules, objectives

    def loss(self, stage: str, batch):
        return self.objectives[stage].loss(self.modules[stage], batch)

    def share(self, indices: list[int]) -> list[int]:
        return indices

    def grad_sync(self, stage: str, last: bool):
        return contextlib.nullcontext()

    def token_share(self, n: int) -> tuple[float, int]:
        return 1.0, n

    def global_loss(self, loss: torch.Tensor, weight: float) -> float:
        return float(loss)

    def to_float(self, value) -> float:
        return float(value)

    def agree(self, values: dict) -> dict:
        return values

    def any(self, flag: bool) -> bool:
        return flag

    def optimizer_states(self, optimizers: dict) -> dict:
        return {s: o.state_dict() for s, o in optimizers.items()}

    def load_optimizer(self, optimizer, state: dict) -> None:
        optimizer.load_state_dict(state)

    def rng_states(self, mine: dict) -> dict:
        return mine

    def my_rng(self, saved: dict) -> dict:
        return saved

    def load_param(self, param, value: torch.Tensor) -> None:
        param.copy_(value.to(param.device, param.dtype))

    def full_weights(self):
        return contextlib.nullcontext()

    def main_only(self, write, default):
        return write()


def rank_slice(indices: list[int], rank: int, world: int) -> list[int]:
    """Rank `rank`'s part of a global micro-batch of batch_size x world indices (in order)."""
    per_rank = len(indices) // world
    return indices[rank * per_rank:(rank + 1) * per_rank]
