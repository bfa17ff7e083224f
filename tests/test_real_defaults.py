"""No command, tab or handler falls back to the random-weight `tiny` model unless it is named: the
CLI's `--model` defaults, the tabs' default choices (and how they label the test models), the
handlers' and the sweep grid's fallbacks, read from the code itself."""
from __future__ import annotations

import ast
from pathlib import Path

import click
import gradio as gr

from models.asr import RANDOM_PRESET as RANDOM_WHISPER
from studio.inference import DEFAULT_MODEL, TEST_MODEL, TEST_MODEL_LABEL

REPO = Path(__file__).resolve().parent.parent


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        path = (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path)
        else:
            yield " ".join(path), cmd


def test_every_model_option_of_the_cli_defaults_to_small():
    from studio.cli import main

    seen = {}
    for path, cmd in _commands(main):
        for param in cmd.params:
            if "--model" in getattr(param, "opts", ()):
                seen[path] = param.default if isinstance(param.default, str) else None  # click's unset sentinel
            if "--model-size" in getattr(param, "opts", ()) or "--asr" in getattr(param, "opts", ()):
                assert param.default != RANDOM_WHISPER, f"{path} {param.opts[0]} defaults to the random Whisper"
    assert {"generate", "train", "tokenize", "voice create", "sweep"} <= set(seen), seen
    assert seen.pop("adapters export") is None  # a merged export uses the adapter's own base
    assert set(seen.values()) == {DEFAULT_MODEL} and DEFAULT_MODEL == "small", seen


WHISPER_PICKERS = {"ds-whisper-size", "sweep-asr"}


def test_no_tab_offers_a_test_model_as_its_default_choice(ws):
    from studio.ui.app import build_studio

    blocks = build_studio(ws)
    offering = {}
    for block in blocks.blocks.values():
        if not isinstance(block, gr.Dropdown):
            continue
        choices = {value: label for label, value in block.choices}
        if TEST_MODEL in choices and block.elem_id not in WHISPER_PICKERS:  # Whisper's tiny is a real checkpoint
            offering[block.elem_id] = block.value
            assert choices[TEST_MODEL] == TEST_MODEL_LABEL, (block.elem_id, choices[TEST_MODEL])
        if RANDOM_WHISPER in choices:
            assert block.value != RANDOM_WHISPER and "test model" in choices[RANDOM_WHISPER], block.elem_id
    # every Bark model picker (Voices, Train, Generate) opens on the real model
    assert set(offering) >= {"voices-model", "train-base", "gen-model"}, offering
    assert set(offering.values()) == {DEFAULT_MODEL}, offering
    whisper = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "ds-whisper-size")
    assert whisper.value == "base" and {"tiny", "base", "small", "medium", "large-v3"} <= {v for _, v in whisper.choices}


def test_tab_handlers_and_the_sweep_grid_fill_in_small():
    from studio.experiments import grid, records
    from studio.ui.generate_tab import generate_params

    assert generate_params(None, "Hi.", None, None, [], {}, 0, 1)["model"] == DEFAULT_MODEL
    assert grid.normalize({"prompts": ["Hi."], "seeds": [0]})["model"] == DEFAULT_MODEL
    (arm,) = records.normalize_arms([{"name": "prompted", "kind": "voice_prompt", "voice": "v.npz"}])
    assert arm["model"] == DEFAULT_MODEL


def _tiny_fallbacks(path: Path) -> list[str]:
    """`x or "tiny"`, `def f(model="tiny")` and `default="tiny"` in one source file."""
    tree = ast.parse(path.read_text(), str(path))
    is_tiny = lambda node: isinstance(node, ast.Constant) and node.value == TEST_MODEL  # noqa: E731
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and is_tiny(node.values[-1]):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: ... or 'tiny'")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += [f"{path.relative_to(REPO)}:{node.lineno}: {node.name}(...='tiny')"
                      for d in node.args.defaults + node.args.kw_defaults if d is not None and is_tiny(d)]
        elif isinstance(node, ast.keyword) and node.arg in ("default", "value") and is_tiny(node.value):
            found.append(f"{path.relative_to(REPO)}:{node.value.lineno}: {node.arg}='tiny'")
    return found


def test_no_handler_or_command_falls_back_to_tiny_in_the_source():
    """The job handlers read `params.get("model") or <default>`; none may default to tiny."""
    files = sorted((REPO / "studio").rglob("*.py")) + sorted((REPO / "workers").rglob("*.py"))
    assert len(files) > 40
    found = [hit for f in files for hit in _tiny_fallbacks(f)]
    assert found == [], "\n".join(found)
