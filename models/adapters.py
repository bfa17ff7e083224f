"""Adapters on disk: a folder with one PEFT subfolder per trained stage and a manifest.

    my-voice/
      manifest.json          base model + signature, stages, dataset, hyperparameters, metrics,
                             parent checkpoint, created, studio version, sha256 of every file
      semantic/              adapter_config.json + adapter_model.safetensors (plain PEFT:
      coarse/                `PeftModel.from_pretrained(bark.semantic, "my-voice/semantic")`)

A full fine-tune is stored the same way with `<stage>/model.safetensors` (the stage's weights)
instead of a PEFT folder; it applies as an interpolation base + scale * (tuned - base).

Applying: one adapter at a scale (0 = base, 1 = as trained, > 1 = amplified), or a weighted mix
of several (every adapter active at once, each at its own scale, so the stage computes
base + sum_i scale_i * delta_i exactly). Merging writes a standalone BarkModel folder.
"""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import torch

from models.errors import ModelInputError
from models.files import new_folder, sha256_file, verify_files
from models.lora import STAGES, freeze, parse_stages, peft_models, stage_module

MANIFEST = "manifest.json"
FORMAT = "bark-studio-adapter"
FORMAT_VERSION = 1
FULL_WEIGHTS = "model.safetensors"
_FULL_ATTR = "_studio_full_originals"  # bark.__dict__: {stage: {param name: base tensor}}


class AdapterError(ModelInputError):
    """An adapter folder that cannot be used: missing, corrupt, or for another base model."""


def studio_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bark-studio")
    except PackageNotFoundError:
        return "unknown"


def utc_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- which base model --------------------------------------------------------------------------

def base_signature(bark, stages=STAGES) -> dict:
    """A dtype-tolerant fingerprint of the base weights each stage's adapter was trained on:
    shapes plus a probe of input-embedding values (distinct for every checkpoint and seed)."""
    sig = {}
    for stage in parse_stages(stages):
        module = stage_module(bark, stage)
        emb = module.input_embeds_layers[0] if stage == "fine" else module.input_embeds_layer
        weight = emb.weight.detach().float().cpu()
        rows = torch.linspace(0, weight.shape[0] - 1, 4).long()
        sig[stage] = {
            "hidden_size": int(module.config.hidden_size),
            "num_layers": int(module.config.num_layers),
            "vocab": [int(weight.shape[0])],
            "probe": [round(float(v), 6) for v in weight[rows, : min(8, weight.shape[1])].flatten()],
        }
    return sig


def check_base(manifest: dict, bark, path: Path, base_model: str | None = None) -> None:
    """Refuse an adapter trained on another base model, naming both."""
    mine = base_signature(bark, manifest["stages"])
    theirs = manifest.get("base_signature") or {}
    here = f" ({base_model!r})" if base_model else ""
    for stage in manifest["stages"]:
        want, have = theirs.get(stage), mine[stage]
        same = want is not None and all(want.get(k) == have[k] for k in ("hidden_size", "num_layers", "vocab"))
        same = same and torch.allclose(torch.tensor(want["probe"]), torch.tensor(have["probe"]), rtol=1e-2, atol=2e-3)
        if not same:
            raise AdapterError(
                f"adapter {str(path)!r} was trained on base model {manifest.get('base_model')!r}; the loaded "
                f"model{here} is a different base (its {stage} stage does not match), so it cannot be applied")


def write_adapter(bark, folder: Path, manifest: dict, adapter_name: str = "default") -> dict:
    """Write the trained stages of `bark` and the manifest into `folder` (which may be a temporary
    folder: atomicity is the caller's). `manifest` needs at least method, stages, base_model and
    base_signature; created, studio version and file checksums are filled in here."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stages = parse_stages(manifest["stages"])
    for stage in stages:
        out = folder / stage
        if manifest["method"] == "lora":
            wrapped = peft_models(bark).get(stage)
            if wrapped is None:
                raise AdapterError(f"the {stage} stage carries no LoRA adapter to save")
            wrapped.save_pretrained(out, selected_adapters=[adapter_name])
            if adapter_name != "default":  # PEFT puts non-default names in a subfolder
                for f in (out / adapter_name).iterdir():
                    f.rename(out / f.name)
                (out / adapter_name).rmdir()
        else:
            from safetensors.torch import save_file

            out.mkdir(parents=True, exist_ok=True)
            module = stage_module(bark, stage)
            # named_parameters drops tied duplicates (fine lm_heads share embeddings)
            save_file({n: p.detach().contiguous().cpu() for n, p in module.named_parameters()}, out / FULL_WEIGHTS)
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, "created": utc_iso(),
            "studio_version": studio_version(), **manifest, "stages": list(stages)}
    full["files"] = {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*"))
                     if p.is_file() and p.name != MANIFEST}
    with open(folder / MANIFEST, "w") as f:
        json.dump(full, f, indent=2, default=str)
    return full


def save_adapter(bark, out_dir, *, method: str, stages, base_model: str, base_signature: dict,
                 dataset: dict | None = None, hyperparameters: dict | None = None, metrics: dict | None = None,
                 parent_checkpoint: str | None = None, name: str | None = None) -> dict:
    """Save the adapter atomically as `out_dir` (a new folder). Returns the manifest."""
    out_dir = Path(out_dir)
    with new_folder(out_dir, AdapterError, "adapter folder") as tmp:
        manifest = write_adapter(bark, tmp, {
            "name": name or out_dir.name, "method": method, "stages": list(parse_stages(stages)),
            "base_model": base_model, "base_signature": base_signature, "dataset": dataset or {},
            "hyperparameters": hyperparameters or {}, "metrics": metrics or {},
            "parent_checkpoint": parent_checkpoint})
    return manifest


def copy_adapter(src, out_dir, updates: dict | None = None) -> dict:
    """Copy an adapter folder (e.g. out of a checkpoint) to a new folder atomically, updating
    manifest fields (name, parent checkpoint, metrics...)."""
    src, out_dir = Path(src), Path(out_dir)
    manifest = load_manifest(src)
    with new_folder(out_dir, AdapterError, "adapter folder") as tmp:
        for item in src.iterdir():
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            elif item.name != MANIFEST:
                shutil.copy2(item, tmp / item.name)
        manifest = {**manifest, **(updates or {})}
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2, default=str)
    return manifest


def assemble_adapter(stage_sources: dict, folder, updates: dict | None = None) -> dict:
    """Fill `folder` (new or empty; atomicity is the caller's) with one adapter whose stage
    subfolders come from different adapter folders ({stage: adapter folder}): each stage from
    its own best checkpoint. The manifest is the newest source's, restricted to these stages,
    with `updates` applied and the checksums of the copied files."""
    folder = Path(folder)
    manifests = {stage: load_manifest(src) for stage, src in stage_sources.items()}
    methods = {m["method"] for m in manifests.values()}
    if len(methods) != 1:
        raise AdapterError(f"cannot assemble stages trained with different methods ({', '.join(sorted(methods))})")
    for stage, src in stage_sources.items():
        if stage not in manifests[stage]["stages"]:
            raise AdapterError(f"adapter {str(src)!r} holds no {stage} stage")
        shutil.copytree(Path(src) / stage, folder / stage)
    stages = [s for s in STAGES if s in stage_sources]
    newest = max(manifests.values(), key=lambda m: (m.get("metrics") or {}).get("step") or 0)
    manifest = {**newest, **(updates or {}), "stages": stages, "created": utc_iso(),
                "base_signature": {s: manifests[s]["base_signature"][s] for s in stages
                                   if s in (manifests[s].get("base_signature") or {})}}
    manifest["files"] = {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*"))
                         if p.is_file() and p.name != MANIFEST}
    with open(folder / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=2, default=str)
    return manifest


def load_manifest(path, verify: bool = True) -> dict:
    """Read and check an adapter folder's manifest (and, with `verify`, every file's checksum)."""
    path = Path(path)
    mpath = path / MANIFEST
    if not path.is_dir():
        raise AdapterError(f"adapter {str(path)!r} is not a folder")
    if not mpath.is_file():
        raise AdapterError(f"{str(mpath)!r} is missing: not an adapter folder")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError(f"{str(mpath)!r} is corrupt: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise AdapterError(f"{str(mpath)!r} is not a bark-studio adapter manifest")
    for key in ("method", "stages", "base_model"):
        if key not in manifest:
            raise AdapterError(f"{str(mpath)!r} lacks {key!r}")
    try:
        manifest["stages"] = list(parse_stages(manifest["stages"]))
    except ModelInputError as exc:
        raise AdapterError(f"{str(mpath)!r}: {exc}") from None
    if verify:
        verify_files(path, manifest.get("files"), AdapterError, "adapter")
        for stage in manifest["stages"]:
            need = [FULL_WEIGHTS] if manifest["method"] == "full" else ["adapter_config.json"]
            for name in need:
                if not (path / stage / name).is_file():
                    raise AdapterError(f"adapter {str(path)!r} is incomplete: {stage}/{name} is missing")
    return manifest


# --- applying ----------------------------------------------------------------------------------

def remove_adapters(bark):
    """Take every adapter off `bark` (LoRA layers unloaded, fully tuned weights restored)."""
    wrapped = peft_models(bark)
    for stage, model in list(wrapped.items()):
        model.unload()  # puts the original Linear modules back, weights untouched
        del wrapped[stage]
    originals = bark.__dict__.pop(_FULL_ATTR, {})
    for stage, params in originals.items():
        module = stage_module(bark, stage)
        with torch.no_grad():
            for n, p in module.named_parameters():
                if n in params:
                    p.copy_(params[n])
    return bark


def apply_adapters(bark, specs, base_model: str | None = None):
    """Apply adapters to `bark` in place: `specs` is [(folder, scale), ...]. One spec applies an
    adapter at a scale; several make a weighted mix. Adapters already on `bark` are removed first.
    Returns `bark` (in eval mode, frozen)."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    remove_adapters(bark)
    freeze(bark)
    loaded = []
    for i, (path, scale) in enumerate(specs):
        path = Path(path)
        manifest = load_manifest(path)
        check_base(manifest, bark, path, base_model)
        loaded.append((f"a{i}", path, float(scale), manifest))

    wrapped = peft_models(bark)
    per_stage: dict[str, list[tuple[str, float]]] = {}
    for name, path, scale, manifest in loaded:
        for stage in manifest["stages"]:
            if manifest["method"] == "full":
                _add_full_delta(bark, stage, path / stage / FULL_WEIGHTS, scale)
                continue
            try:
                if stage in wrapped:
                    wrapped[stage].load_adapter(str(path / stage), adapter_name=name)
                else:
                    wrapped[stage] = PeftModel.from_pretrained(stage_module(bark, stage), str(path / stage),
                                                               adapter_name=name)
            except Exception as exc:  # noqa: BLE001 - PEFT/safetensors raise many kinds
                raise AdapterError(f"adapter {str(path)!r}: cannot load the {stage} stage: {exc}") from exc
            per_stage.setdefault(stage, []).append((name, scale))

    for stage, named in per_stage.items():
        model = wrapped[stage]
        model.base_model.set_adapter([n for n, _ in named], inference_mode=True)
        for module in model.modules():
            if isinstance(module, LoraLayer):
                for n, scale in named:
                    module.set_scale(n, scale)  # scaling = scale * alpha / r
    freeze(bark)
    return bark.eval()


def _add_full_delta(bark, stage: str, weights: Path, scale: float) -> None:
    """w <- w + scale * (tuned - base), remembering the base weights for remove_adapters."""
    from safetensors.torch import load_file

    try:
        tuned = load_file(str(weights))
    except Exception as exc:  # noqa: BLE001
        raise AdapterError(f"{str(weights)!r} is corrupt: {exc}") from exc
    module = stage_module(bark, stage)
    originals = bark.__dict__.setdefault(_FULL_ATTR, {}).setdefault(stage, {})
    with torch.no_grad():
        for n, p in module.named_parameters():
            if n not in tuned:
                raise AdapterError(f"{str(weights)!r} lacks weight {n}")
            base = originals.setdefault(n, p.detach().clone())
            p.add_(scale * (tuned[n].to(p.device, p.dtype) - base))


def merge_adapters(bark, specs, base_model: str | None = None):
    """Apply `specs` ([(folder, scale), ...]: one adapter at a scale or a weighted mix) and fold
    them into the weights of `bark` in place: each LoRA-targeted weight becomes
    w + sum_i scale_i * alpha_i / r_i * B_i @ A_i, computed on the weights as they are (fp32 as
    loaded, so do this before any bf16/fp16 cast). No PEFT module is left in the forward path:
    the stages run at the base model's speed. Scale 0 adds an exact zero, so it equals the base.
    Returns `bark` (eval mode, frozen)."""
    apply_adapters(bark, specs, base_model)
    wrapped = peft_models(bark)
    for stage in list(wrapped):
        wrapped.pop(stage).merge_and_unload()  # the stage module itself now holds the merged weights
    bark.__dict__.pop(_FULL_ATTR, None)  # full fine-tunes were already added into the weights
    return bark


def save_bark(bark, folder: Path) -> None:
    """bark.save_pretrained, working around transformers 5.24's BarkGenerationConfig, which cannot
    serialise itself (its stage configs are dicts after loading, and GenerationConfig's checks read
    fields it never sets): its generation_config.json is written here, in the layout
    BarkGenerationConfig's constructor reads back."""
    gc = bark.generation_config

    class _Writer:
        def save_pretrained(self, directory, **_kw):
            def plain(c):
                return c if isinstance(c, dict) else c.to_dict()

            data = {"model_type": "bark", "sample_rate": getattr(gc, "sample_rate", 24_000),
                    "codebook_size": getattr(gc, "codebook_size", 1024)}
            for key in ("semantic_config", "coarse_acoustics_config", "fine_acoustics_config"):
                if hasattr(gc, key):
                    data[key] = plain(getattr(gc, key))
            Path(directory, "generation_config.json").write_text(json.dumps(data, indent=2, default=str))

    bark.generation_config = _Writer()
    try:
        bark.save_pretrained(folder)
    finally:
        bark.generation_config = gc


def merge_and_export(bark, specs, out_dir, base_model: str | None = None) -> Path:
    """Apply `specs` ([(folder, scale), ...]), merge them into the weights, and save the result as
    a standalone BarkModel folder (`BarkModel.from_pretrained(out_dir)` loads it). Modifies `bark`
    in place. Written to a temporary folder and renamed, so `out_dir` is complete or absent."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise AdapterError(f"export folder {str(out_dir)!r} already exists")
    merge_adapters(bark, specs, base_model)
    with new_folder(out_dir, AdapterError, "export folder") as tmp:
        save_bark(bark, tmp)
        sources = [{"adapter": str(p), "scale": float(s), "manifest": load_manifest(p, verify=False)}
                   for p, s in specs]
        with open(tmp / "bark_studio_export.json", "w") as f:
            json.dump({"base_model": base_model, "created": utc_iso(), "studio_version": studio_version(),
                       "adapters": sources}, f, indent=2, default=str)
    return out_dir
