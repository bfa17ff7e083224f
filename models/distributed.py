"""One training job over N ranks of one host, on torch.distributed, launched by torchrun:

    python -m torch.distributed.run --standalone --nproc-per-node N -m models.distributed SPEC_DIR

The job's own process (workers/handlers/train.py) writes SPEC_DIR/spec.pt (the config, the
tokenized items, the run folder, the checkpoint to resume), starts torchrun and reads
SPEC_DIR/events.jsonl, which rank 0 appends to: `plan`, `progress`, `checkpoint`, `result`, and
`error` from any rank that failed. A file SPEC_DIR/stop asks the ranks to stop: rank 0 looks for it
after every step and the ranks agree through an all-reduce, so every rank stops at the same step
and one checkpoint is written.

The recipe (models.training.TrainingRecipe) is the same code at any world size; a `Group` is what
it asks where it stands (`SingleProcess` in one process):
- data: every rank draws the same global order (StageSampler), takes batch_size x world examples
  per micro-batch and keeps its slice, so the ranks see each example once per epoch between them
  and the global batch is batch_size x world x grad_accum;
- loss: a rank weighs its mean by its share of the micro-batch's target tokens, so averaging the
  gradients (DDP, FSDP) gives the token mean over the global micro-batch: the gradient one rank
  computes on that batch;
- LoRA runs under DDP (a replica per rank, gradients all-reduced), a full fine-tune under FSDP2
  (`fully_shard` per transformer layer and per stage: weights, gradients and AdamW moments
  sharded across ranks);
- validation runs on every rank (FSDP's forward is collective) and rank 0's numbers are the ones
  all ranks act on, so early stopping never splits them;
- checkpoints are written by rank 0 alone, atomically, in the one-process format (full weights,
  full optimizer state, every rank's RNG), so a run resumes at any world size.

A rank dies with its torchrun (PR_SET_PDEATHSIG; a rank whose torchrun died before it set that
exits at start), and torchrun with the job's process, so a SIGKILL anywhere leaves no rank behind;
torchrun itself ends the others when one rank dies (SIGTERM, whose default action ends a rank even
while it waits in a gloo or NCCL collective; SIGKILL 30 s later). The job's process kills torchrun
whenever it stops relaying, and its worker kills the job's process if it outlives the job's ending
(workers.runner), so the job's GPU locks, freed when the job ends, never wait on a launcher or a rank.
BARK_STUDIO_DIST_BACKEND=gloo runs the ranks on the CPU, for tests only (models.world)."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

import torch

from models.rank_group import SingleProcess, rank_slice  # noqa: F401  (rank_slice: re-exported)

SPEC, EVENTS, STOP = "spec.pt", "events.jsonl", "stop"


class _StageLoss(torch.nn.Module):
    """One forward = one micro-batch's loss of one stage, so DDP and FSDP see one forward per
    backward (the fine stage calls its model once per codebook; the semantic stage sums its
    embeddings before the model's forward)."""

    def __init__(self, module: torch.nn.Module, objective):
        super().__init__()
        self.module = module
        self.objective = objective

    def forward(self, batch):
        return self.objective.loss(self.module, batch)


class Group(SingleProcess):
    """This rank's place in a job of `world` ranks (the process group is initialised)."""

    def __init__(self, device: torch.device):
        import torch.distributed as dist

        self.dist, self.device = dist, device
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.is_main = self.rank == 0
        self.fsdp_units: list = []

    # model -------------------------------------------------------------------------------------
    def wrap(self, bark, modules: dict, objectives: dict, method: str) -> None:
        """LoRA: a DDP replica of each stage's loss; full: each stage sharded by FSDP2."""
        self.modules, self.objectives, self.method = modules, objectives, method
        self.wrappers = {}
        for stage, module in modules.items():
            wrapper = _StageLoss(module, objectives[stage])
            if method == "full":
                from torch.distributed.device_mesh import init_device_mesh
                from torch.distributed.fsdp import fully_shard

                mesh = init_device_mesh(self.device.type, (self.world,))
                for layer in module.layers:  # a layer's weights gather just before it runs
                    self.fsdp_units.append(fully_shard(layer, mesh=mesh))
                self.fsdp_units.append(fully_shard(wrapper, mesh=mesh))  # embeddings, norms, heads
                self.wrappers[stage] = wrapper
            else:
                from torch.nn.parallel import DistributedDataParallel as DDP

                ids = [self.device.index] if self.device.type == "cuda" else None
                self.wrappers[stage] = DDP(wrapper, device_ids=ids, broadcast_buffers=False)

    def loss(self, stage: str, batch):
        return self.wrappers[stage](batch)

    def grad_sync(self, stage: str, last: bool):
        """Gradients are reduced across ranks on the last micro-batch of a step only."""
        wrapper = self.wrappers[stage]
        if self.method == "full":
            wrapper.set_requires_gradient_sync(last)
            return contextlib.nullcontext()
        return contextlib.nullcontext() if last else wrapper.no_sync()

    # data and loss -----------------------------------------------------------------------------
    def share(self, indices: list[int]) -> list[int]:
        return rank_slice(indices, self.rank, self.world)

    def token_share(self, n: int) -> tuple[float, int]:
        """(this rank's weight, the micro-batch's target tokens over all ranks)."""
        total = torch.tensor([float(n)], dtype=torch.float64)
        self._all_reduce(total)
        n_total = int(total.item())
        return (n * self.world / n_total if n_total else 0.0), n_total

    def global_loss(self, loss: torch.Tensor, weight: float) -> float:
        """The token mean over the global micro-batch (what one rank reports on the whole batch)."""
        value = torch.tensor([float(loss) * weight], dtype=torch.float64)
        self._all_reduce(value)
        return float(value.item()) / self.world

    def to_float(self, value) -> float:
        return float(value.full_tensor() if hasattr(value, "full_tensor") else value)

    def agree(self, values: dict) -> dict:
        box = [values]
        self.dist.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def any(self, flag: bool) -> bool:
        value = torch.tensor([1.0 if flag else 0.0])
        self._all_reduce(value, op=self.dist.ReduceOp.MAX)
        return bool(value.item())

    def _all_reduce(self, cpu_tensor: torch.Tensor, op=None) -> None:
        moved = cpu_tensor.to(self.device)
        self.dist.all_reduce(moved, op=op or self.dist.ReduceOp.SUM)
        cpu_tensor.copy_(moved.cpu())

    def _object_device(self):
        return self.device if self.device.type == "cuda" else None

    # checkpoints ------------------------------------------------------------------------------
    def optimizer_states(self, optimizers: dict) -> dict:
        """Every rank (FSDP gathers the shards): the optimizer states as one process has them."""
        out = {}
        for stage, optimizer in optimizers.items():
            state = optimizer.state_dict()  # its per-parameter dicts are the live ones: copy, never edit
            state["state"] = {index: {key: value.full_tensor().cpu() if hasattr(value, "full_tensor") else value
                                      for key, value in per_param.items()}
                              for index, per_param in state["state"].items()}
            out[stage] = state
        return out

    def load_optimizer(self, optimizer, state: dict) -> None:
        """A one-process optimizer state onto this rank: FSDP keeps its shard of each moment."""
        if self.method == "full":
            from torch.distributed.tensor import distribute_tensor

            params = [p for group in optimizer.param_groups for p in group["params"]]
            state = {**state, "state": {
                index: {key: distribute_tensor(value.to(self.device), params[int(index)].device_mesh,
                                               params[int(index)].placements)
                        if torch.is_tensor(value) and value.dim() > 0 and value.shape == params[int(index)].shape
                        else value for key, value in per_param.items()}
                for index, per_param in state["state"].items()}}
        optimizer.load_state_dict(state)

    def rng_states(self, mine: dict) -> dict:
        """Rank 0's RNG state (what one process resumes from) and every rank's (for the same world)."""
        ranks = [None] * self.world
        self.dist.all_gather_object(ranks, mine)
        return {**ranks[0], "ranks": ranks}

    def my_rng(self, saved: dict) -> dict:
        ranks = saved.get("ranks") or []
        return ranks[self.rank] if len(ranks) == self.world else saved

    def load_param(self, param, value: torch.Tensor) -> None:
        if hasattr(param, "device_mesh"):  # an FSDP shard: keep this rank's part
            from torch.distributed.tensor import distribute_tensor

            value = distribute_tensor(value.to(self.device, param.dtype), param.device_mesh, param.placements)
            param.copy_(value)
        else:
            param.copy_(value.to(param.device, param.dtype))

    @contextlib.contextmanager
    def full_weights(self):
        """FSDP: every layer's full weights in place (gathered on every rank) while rank 0 writes."""
        for unit in self.fsdp_units:
            unit.unshard()
        try:
            yield
        finally:
            for unit in self.fsdp_units:
                unit.reshard()

    def main_only(self, write, default):
        """Rank 0 writes; the others wait for it, so no rank runs ahead of a checkpoint."""
        result = write() if self.is_main else default
        self.dist.barrier()
        return result


# --- the rank's entry point ------------------------------------------------------------------------

class Events:
    """Rank 0's reports to the job's process: one JSON object a line, appended and flushed."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def emit(self, kind: str, data) -> None:
        line = json.dumps({"event": kind, "data": data}, default=_plain) + "\n"
        with open(self.path, "a") as f:  # one write per line: a reader never sees half of one
            f.write(line)


def _plain(value):
    if torch.is_tensor(value):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class EventReader:
    """The job's side of Events: the complete lines written since the last read."""

    def __init__(self, path: Path):
        self.path, self.offset = Path(path), 0

    def new(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data[:data.rfind(b"\n") + 1]  # a line still being written waits for the next read
        self.offset += len(complete)
        return [json.loads(line) for line in complete.decode().splitlines() if line.strip()]


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (set in the child before exec, or at a
    rank's start), so no rank and no torchrun outlives the job that started it."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def launched_by_torchrun(pid: int) -> bool:
    """Whether `pid` is a torchrun launcher (a rank's parent); True where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return not Path("/proc/self").exists()
    return b"torch.distributed.run" in cmdline or b"torchrun" in cmdline


def _watch_parent(parent: int) -> None:
    """Where prctl is missing: exit once re-parented."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(3)


def lost_peer(exc: BaseException) -> bool:
    """An error that only says another rank is gone (it was killed; torchrun reports that)."""
    import torch.distributed as dist

    text = str(exc)
    return isinstance(exc, dist.DistError) or any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL communicator was aborted"))


def _device(backend: str) -> torch.device:
    if backend == "gloo":
        return torch.device("cpu")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def train_rank(spec: dict, group: Group, events: Events | None, stop_file: Path) -> dict:
    """Build the recipe from the spec and train this rank's part; rank 0 reports."""
    from models import presets
    from models.training import TrainConfig, TrainingRecipe, describe

    config = TrainConfig.from_dict({**spec["config"], "device": str(group.device)})
    report = (lambda kind: (lambda info: events.emit(kind, info))) if events else (lambda kind: (lambda info: None))
    bark = presets.load_bark(spec["model"])
    recipe = TrainingRecipe(config, bark, spec["items"], spec["run_dir"], guard_items=spec.get("guard_items"),
                            base_model=spec["model"], speakers=spec.get("speakers"), dataset=spec.get("dataset"),
                            resume_from=spec.get("resume_from"), on_progress=report("progress"),
                            on_checkpoint=report("checkpoint"),
                            should_stop=lambda: group.any(group.is_main and stop_file.exists()), dist=group)
    recipe.setup()
    if events:
        events.emit("plan", {**describe(recipe), "step": recipe.step, "world": group.world})
    result = recipe.train()
    return {**result.to_dict(), "history": [],  # the progress events carried the history
            "memory": memory_per_rank(recipe)}


def memory_per_rank(recipe) -> dict:
    """What this rank holds of the training state (its shards of the trainable weights and of AdamW's
    moments; frozen weights too), and the card's peak allocation: the figures FSDP divides."""
    def local(t):
        return t.to_local() if hasattr(t, "to_local") else t

    weights = sum(local(p).numel() * local(p).element_size() for p in recipe.bark.parameters())
    moments = sum(local(v).numel() * local(v).element_size() for o in recipe.optimizers.values()
                  for st in o.state.values() for v in st.values() if torch.is_tensor(v))
    out = {"state_mib": (weights + moments) / 2**20, "weights_mib": weights / 2**20, "moments_mib": moments / 2**20}
    if recipe.device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated(recipe.device) / 2**20
    return out


def main(argv: list[str]) -> int:
    import torch.distributed as dist

    from models.world import backend

    if len(argv) != 1:
        print("usage: torchrun ... -m models.distributed SPEC_DIR", file=sys.stderr)
        return 2
    die_with_parent()
    launcher = os.getppid()
    if not launched_by_torchrun(launcher):  # torchrun died while this rank was starting, before the line above
        print(f"models.distributed: the launcher is gone (parent {launcher}); exiting", file=sys.stderr)
        return 3
    threading.Thread(target=_watch_parent, args=(launcher,), daemon=True).start()
    spec_dir = Path(argv[0])
    chosen = backend()
    device = _device(chosen)
    dist.init_process_group(chosen)
    group = Group(device)
    events = Events(spec_dir / EVENTS) if group.is_main else None
    try:
        spec = torch.load(spec_dir / SPEC, weights_only=False)
        result = train_rank(spec, group, events, spec_dir / STOP)
        if events:
            events.emit("result", result)
        dist.destroy_process_group()
        return 0
    except BaseException as exc:  # noqa: BLE001 - reported to the job's process, then a non-zero exit
        if not lost_peer(exc):
            from models.errors import ModelInputError

            user = isinstance(exc, ModelInputError) or type(exc).__name__ == "CheckpointError"
            first = (str(exc).strip().splitlines() or [""])[0]
            Events(spec_dir / EVENTS).emit("error", {"rank": group.rank, "user": user, "type": type(exc).__name__,
                                                     "message": first, "traceback": traceback.format_exc()})
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
