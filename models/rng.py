"""Per-output random streams that draw on whatever device the model runs on.

torch.multinomial refuses a generator that lives on another device than its probabilities (a CPU
generator with CUDA probabilities raises "Expected a 'cuda' device type for generator"). So an
output carries its seed, not a generator: `draw(probs, rng)` asks the `RowRandom` for its
generator on `probs.device`, made and seeded there on first use, and the same seed gives the same
draws on every run on that device (a CPU and a CUDA generator are different algorithms: the same
seed gives other draws on each). On the CPU a RowRandom(s) draws exactly what
`torch.Generator().manual_seed(s)` draws, and what transformers draws after `torch.manual_seed(s)`.
"""
from __future__ import annotations

import torch


class RowRandom:
    """One output's random stream: a seed, and one torch.Generator per device it has drawn on."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: str | torch.device) -> torch.Generator:
        """The generator on `device`, seeded with this row's seed when first asked for."""
        device = torch.device(device)
        if device not in self._generators:
            self._generators[device] = self._new_generator(device).manual_seed(self.seed)
        return self._generators[device]

    def _new_generator(self, device: torch.device) -> torch.Generator:
        return torch.Generator(device=device)

    def __repr__(self) -> str:
        return f"RowRandom({self.seed})"


def row_randoms(seeds) -> list[RowRandom]:
    return [RowRandom(s) for s in seeds]


def draw(probs: torch.Tensor, rng: RowRandom | torch.Generator | None) -> torch.Tensor:
    """(N, V) probabilities -> (N, 1) sampled ids, from `rng`'s generator on probs.device (a plain
    torch.Generator is used as given, and must already live there; None: the device's global RNG)."""
    generator = rng.generator(probs.device) if isinstance(rng, RowRandom) else rng
    return torch.multinomial(probs, 1, generator=generator)
