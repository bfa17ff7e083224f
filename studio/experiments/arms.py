"""How an experiment's arms, adapters and voices are written, for the CLI (`--arm`, `--adapter`,
`--mix`) and the Experiments tab alike: `name=lora,kind=finetune,adapter=adapters/x:1.0`,
`voice=voices/x.npz`, `speaker=alice:0.7,bob:0.3`, `label=accent=0.35`, or a JSON object. Paths may be absolute, relative to the current folder or
relative to the workspace (as the README and the form's placeholder write them); a bare name is
a saved voice or a trained adapter. `where` names the field in messages (a CLI flag, a form line)."""
from __future__ import annotations

import json
from pathlib import Path

from studio import conditioning
from studio.errors import UserError

KINDS = "base, voice_prompt, finetune, adapter_scale, adapter_mix"


def in_workspace(path: Path, ws) -> str:
    """Workspace-relative when inside the workspace (so a copied workspace still finds it), else absolute."""
    path = path.resolve()
    if ws is not None and (ws.root == path or ws.root in path.parents):
        return ws.relative(path)
    return str(path)


def _candidates(name_or_path: str, ws) -> list[Path]:
    p = Path(name_or_path).expanduser()
    return [p] if p.is_absolute() or ws is None else [p, ws.root / p]


def adapter_folder(name_or_path: str, ws=None) -> Path | None:
    """A folder path, or the name of an adapter under the workspace's adapters folder."""
    for p in _candidates(name_or_path, ws):
        if name_or_path and p.is_dir():
            return p
    if ws is not None and name_or_path and "/" not in name_or_path and (ws.adapters_dir / name_or_path).is_dir():
        return ws.adapters_dir / name_or_path
    return None


def voice_file(name_or_path: str, ws=None) -> str | None:
    """A voice prompt .npz path, or the name of a saved voice."""
    for p in _candidates(name_or_path, ws):
        if p.is_file():
            return in_workspace(p, ws)
    if ws is not None:
        try:
            from studio import voices

            return in_workspace(voices.voice_path(ws, name_or_path), ws)
        except (ImportError, UserError):
            from models.catalog import is_builtin_voice_name

            if is_builtin_voice_name(name_or_path):
                raise  # a built-in voice whose prompts are not downloaded: say so
            return None
    return None


def adapter_specs(spec: str, where: str, ws=None) -> list[dict]:
    """PATH:SCALE+PATH:SCALE -> [{path, scale}] (paths resolved; a missing folder is an error)."""
    out = []
    for part in spec.split("+"):
        path, colon, scale = part.rpartition(":")
        if not colon:
            path, scale = part, "1.0"
        try:
            value = float(scale)
        except ValueError:
            raise UserError(f"{where} {spec!r}: scale {scale!r} is not a number") from None
        p = adapter_folder(path.strip(), ws)
        if p is None:
            raise UserError(f"{where} {spec!r}: adapter {path} is neither a folder nor a trained adapter's name")
        out.append({"path": in_workspace(p, ws), "scale": value})
    return out


def parse_arm(spec: str, ws=None, where: str = "--arm") -> dict:
    """JSON, or key=value pairs: name=ft,kind=finetune,adapter=PATH:1.0,voice=PATH,model=tiny, and for an
    adapter trained with --condition speaker=alice:0.7,bob:0.3 (or speaker= repeated) and label=accent=0.35
    (repeat for several labels), stored as the generate job's `speaker` and `labels`."""
    if spec.strip().startswith("{"):
        try:
            return json.loads(spec)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where} {spec!r}: not valid JSON ({exc})") from None
    arm: dict = {}
    speakers, labels, key = [], [], None
    for part in spec.split(","):
        if key == "speaker" and "=" not in part:  # speaker=alice:0.7,bob:0.3: the mix goes on
            speakers.append(part.strip())
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise UserError(f"{where} {spec!r}: write name=...,kind=... (kinds: {KINDS})")
        key, value = key.strip(), value.strip()
        if key == "speaker":
            speakers.append(value)
        elif key == "label":
            labels.append(value)
        elif key == "adapter":
            arm["adapters"] = adapter_specs(value, where, ws)
        elif key == "voice":
            arm["voice"] = voice_file(value, ws)
            if arm["voice"] is None:
                raise UserError(f"{where} {spec!r}: voice {value} is neither a voice prompt file nor a saved voice")
        else:
            arm[key] = value
    return {**arm, **conditioning.condition_params(speakers, labels, f"{where} {spec!r}: speaker",
                                                   f"{where} {spec!r}: label")}


GENERATION_KEYS = ("model", "adapters", "speaker", "labels")


def generation_spec(spec: str, ws=None, where: str = "--generated") -> dict:
    """A listening-session system the model generates, in the arm syntax: model=tiny,adapter=NAME:1.0,
    voice=NAME,speaker=alice:0.7,bob:0.3,label=accent=0.35 -> the generate job's params (adapter
    paths absolute, the voice a saved voice's name as the generate job takes it)."""
    parts = spec.split(",")
    voices = [p.partition("=")[2].strip() for p in parts if p.strip().startswith("voice=")]
    rest = ",".join(p for p in parts if not p.strip().startswith("voice="))
    arm = parse_arm(rest, ws, where) if rest.strip() else {}
    unknown = sorted(set(arm) - set(GENERATION_KEYS))
    if unknown:
        raise UserError(f"{where} {spec!r}: a generated system takes model, adapter, voice, speaker and label, "
                        f"not {', '.join(unknown)}")
    root = ws.root if ws is not None else Path.cwd()
    adapters = [{"path": str(root / a["path"]), "scale": a["scale"]} for a in arm.get("adapters") or []]
    return {**{k: arm[k] for k in ("model", "speaker", "labels") if arm.get(k)},
            **({"adapters": adapters} if adapters else {}), **({"voice": voices[-1]} if voices else {})}
