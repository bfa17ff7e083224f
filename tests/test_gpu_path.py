"""The GPU path, proven on the CPU: sampling draws from a generator on the probabilities' device
(torch refuses a CPU generator with CUDA probabilities), tensors made inside the loops follow their
inputs' device, a job's process sees only its worker's card, devices resolve with clear errors,
and `make gpu-check` refuses in one line where there is no CUDA.

The `meta` device stands in for a GPU: it has no generator of its own, so a RowRandom that records
which device it was asked for shows where each sampling site looks (today's CPU-only code never asks)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from models import fast_generation as fg
from models import generation as G
from models.attention import resolve_device
from models.errors import ModelInputError
from models.rng import RowRandom, draw, row_randoms
from workers.gpu_lock import pin_job_gpu, visible_devices_for

ROOT = Path(__file__).resolve().parents[1]


class RecordingRandom(RowRandom):
    """Records each device a generator is asked for; hands out a CPU one (meta has none)."""

    def __init__(self, seed: int):
        super().__init__(seed)
        self.asked: list[torch.device] = []

    def _new_generator(self, device):
        self.asked.append(device)
        return torch.Generator()


def _meta_probs(rows: int = 2, vocab: int = 7) -> torch.Tensor:
    return torch.full((rows, vocab), 1.0 / vocab, device="meta")


def test_a_row_random_draws_on_the_cpu_exactly_what_a_seeded_cpu_generator_draws():
    probs = torch.softmax(torch.randn(1, 50, generator=torch.Generator().manual_seed(3)), -1)
    rng, ref = RowRandom(123), torch.Generator().manual_seed(123)
    ours = [int(draw(probs, rng)) for _ in range(20)]
    theirs = [int(torch.multinomial(probs, 1, generator=ref)) for _ in range(20)]
    assert ours == theirs and len(set(ours)) > 1            # one stream, continued draw after draw
    assert rng.generator("cpu") is rng.generator(torch.device("cpu"))
    assert rng.generator("cpu").device == torch.device("cpu")
    assert [r.seed for r in row_randoms([4, 5])] == [4, 5]


def test_draw_asks_for_the_generator_of_the_probabilities_device():
    rng = RecordingRandom(7)
    out = draw(_meta_probs(), rng)
    assert out.device.type == "meta" and out.shape == (2, 1)
    assert rng.asked == [torch.device("meta")]
    draw(_meta_probs(), rng)
    assert rng.asked == [torch.device("meta")]               # made once per device, then reused
    with pytest.raises(RuntimeError):                        # torch has no meta generator: it really asked
        RowRandom(7).generator("meta")


def test_both_engines_sample_with_a_generator_on_the_logits_device():
    rows = [RecordingRandom(1), RecordingRandom(2)]
    picked = G._choose(torch.zeros(2, 7, device="meta"), True, rows)
    assert picked.device.type == "meta" and all(r.asked == [torch.device("meta")] for r in rows)

    rows = [RecordingRandom(1), RecordingRandom(2)]
    picked = fg.sample(torch.zeros(2, 7, device="meta"), 0.7, rows, active=[True, False])
    assert picked.device.type == "meta"
    assert rows[0].asked == [torch.device("meta")] and rows[1].asked == []   # an ended row draws nothing


def test_generate_hands_each_row_a_seeded_stream_not_a_cpu_generator():
    gens = fg._generators([5, 6], 2)
    assert all(isinstance(g, RowRandom) for g in gens) and [g.seed for g in gens] == [5, 6]
    with pytest.raises(ModelInputError, match="2 seeds for 1 prompts"):
        fg._generators([5, 6], 1)


def test_an_empty_decode_stays_on_the_inputs_device():
    """causal_decode's no-token result is concatenated onto device tensors by the coarse stage."""
    first = {"input_ids": torch.zeros((3, 4), dtype=torch.long, device="meta")}

    def module(**_):
        return SimpleNamespace(logits=torch.zeros((3, 4, 9), device="meta"), cache=None)

    out = G.causal_decode(module, first, 4, lambda step, logits: None)
    assert out.shape == (3, 0) and out.device.type == "meta"


# --- choosing the card ------------------------------------------------------------------------

def _never(): raise AssertionError("the card count is asked only when CUDA_VISIBLE_DEVICES is unset")


@pytest.mark.parametrize("gpu, visible, count, expected", [
    (None, None, 4, None),        # no BARK_STUDIO_GPU: leave the environment alone
    ("2", None, 4, "2"),          # a host with four cards: only card 2 is left
    ("1", "4,5,6", None, "5"),    # a scheduler's list: the second card of it
    ("3", "3", None, None),       # one visible card already (a container, a scheduler): keep it
    ("1", None, 1, None),         # docker `device_ids: ["1"]` shows that card as the only one
    ("0", None, 0, None),         # no GPU at all: nothing to pin
])
def test_the_job_process_sees_only_the_workers_card(gpu, visible, count, expected):
    assert visible_devices_for(gpu, visible, (lambda: count) if count is not None else _never) == expected


def test_a_card_the_host_does_not_have_is_a_clear_error():
    with pytest.raises(ValueError, match=r"BARK_STUDIO_GPU=5, but this process sees 2 GPUs \(0..1\)"):
        visible_devices_for("5", "0,1", _never)
    with pytest.raises(ValueError, match="not a GPU index"):
        visible_devices_for("cuda:1", None, lambda: 2)


def test_pin_job_gpu_sets_the_environment_the_child_starts_cuda_with():
    env = {"BARK_STUDIO_GPU": "1", "CUDA_VISIBLE_DEVICES": "2,3"}
    assert pin_job_gpu(env) == "3" and env["CUDA_VISIBLE_DEVICES"] == "3"
    env = {}
    assert pin_job_gpu(env) is None and env == {}


def test_the_job_process_pins_its_card_before_anything_loads_torch():
    code = ("import sys, workers.child, workers.gpu_lock, studio.workspace; "
            "assert 'torch' not in sys.modules, 'torch loaded before the card is pinned'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


# --- devices --------------------------------------------------------------------------------

def test_devices_resolve_to_what_is_there_with_clear_errors():
    assert resolve_device("auto") == resolve_device(None)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ModelInputError, match="not a torch device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ModelInputError, match="torch sees no CUDA GPU"):
            resolve_device("cuda:1")


# --- make gpu-check ---------------------------------------------------------------------------

def test_gpu_check_refuses_in_one_line_without_cuda():
    """An empty CUDA_VISIBLE_DEVICES hides every card, so this holds on GPU machines too."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ngpu-check:", 1)[1].split("\n\n", 1)[0]
    assert "scripts/gpu_check.py" in recipe and "gpu-check" in makefile.split(".PHONY:", 1)[1].splitlines()[0]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "scripts/gpu_check.py"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU" in lines[0], lines
