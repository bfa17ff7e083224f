"""The README is the manual: its example command lines parse through the real CLI, every command
is shown there or in docs/CLI.md (every --help, generated from the CLI and held equal to it), and
the two set-up commands open it (Datasette's habit: docs tested against the code).

README conventions the parser reads: a word in capitals (CLIP_ID, SESSION) stands for a value
the reader fills in, and is parsed as `1`; `[--flag]` marks an optional flag, parsed as given."""
from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import click
import pytest

from studio.cli import main

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]+")
SEPARATORS = {";", "&&", "||", "|", "&"}


def _load_cli_reference():
    spec = importlib.util.spec_from_file_location("cli_reference", REPO / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_block_lines(markdown: str) -> list[str]:
    """The lines inside fenced code blocks, with `\\` continuations joined."""
    lines, inside, pending = [], False, ""
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            inside, pending = not inside, ""
            continue
        if not inside:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


def readme_invocations(markdown: str = README) -> list[list[str]]:
    """The argument lists of every `bark-studio ...` command in the README's code blocks
    (several per line when joined by `;` or `&&`; what precedes `bark-studio` and comments dropped)."""
    invocations = []
    for line in code_block_lines(markdown):
        if "bark-studio" not in line:
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token not in SEPARATORS:
                command.append(token)
                continue
            if "bark-studio" in command:  # also after `VAR=value`, `docker compose exec worker`...
                invocations.append(command[command.index("bark-studio") + 1:])
            command = []
    return invocations


def parse(args: list[str]) -> click.Context:
    """Parse `args` as `bark-studio` would (types, required arguments, unknown options), down to
    the leaf command, without running anything. Raises click's UsageError on a bad line."""
    args = ["1" if PLACEHOLDER.fullmatch(a) else a.removeprefix("[").removesuffix("]") for a in args]
    ctx = main.make_context("bark-studio", args, resilient_parsing=False)
    while isinstance(ctx.command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            raise click.UsageError(f"`{ctx.command_path}` needs a subcommand", ctx)
        name, command, rest = ctx.command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=False)
    return ctx


def test_readme_opens_with_the_two_commands():
    top = "\n".join(README.splitlines()[:10])
    assert "make serve" in top and "make test" in top


def test_every_readme_command_line_parses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths in the examples name nothing that exists
    invocations = readme_invocations()
    assert len(invocations) >= 40, "the README's code blocks lost their example commands"
    failures = []
    for args in invocations:
        try:
            parse(args)
        except click.exceptions.Exit:  # --help, --version: parsed, and they exit by design
            pass
        except click.ClickException as exc:
            failures.append(f"bark-studio {shlex.join(args)}\n    {exc.format_message()}")
    assert failures == [], "README lines the CLI rejects:\n" + "\n".join(failures)


def test_the_parser_rejects_what_the_cli_rejects():
    """The check above can fail: an unknown option, a missing argument, a bad number, no subcommand."""
    parse(["dataset", "trim", "CLIP_ID", "0.40", "7.85"])
    for bad in (["dataset", "trim"], ["dataset", "trim", "1", "a", "7"], ["checkpoints", "list", "1"],
                ["jobs", "list", "--no-such-option"], ["dataset"], ["no-such-command"]):
        with pytest.raises(click.UsageError):
            parse(bad)


def test_every_command_appears_in_the_readme_or_the_reference():
    shown = {" ".join(["bark-studio", *_command_words(args)]) for args in readme_invocations()}
    reference = (REPO / "docs" / "CLI.md").read_text()
    listed = set(re.findall(r"^## (bark-studio(?: [\w-]+)*)$", reference, flags=re.M))
    paths = _load_cli_reference().command_paths()
    missing = [p for p in paths if p not in shown and p not in listed]
    assert missing == [], f"commands neither in README.md nor in docs/CLI.md: {missing}"
    top_level = [f"bark-studio {name}" for name in main.commands]
    assert [p for p in top_level if p not in README] == [], "every top-level command is in the README tour"
    assert "docs/CLI.md" in README


def test_every_setting_the_code_reads_is_in_the_configuration_table():
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    named = {m for folder in ("studio", "workers", "models") for path in (REPO / folder).rglob("*.py")
             for m in re.findall(r"[\"'](BARK_STUDIO_[A-Z0-9_]+)[\"']", path.read_text())}
    assert len(named) >= 10
    assert sorted(v for v in named if f"`{v}`" not in table) == [], "variables missing from README's Configuration"


def test_the_committed_reference_is_what_the_cli_generates():
    reference = _load_cli_reference()
    assert reference.TARGET.read_text() == reference.render(), \
        "docs/CLI.md is out of date: run `python scripts/cli_reference.py`"


def _command_words(args: list[str]) -> list[str]:
    """The command path words of one invocation (`dataset trim`), read through the real groups."""
    words, command = [], main
    for arg in args:
        if not isinstance(command, click.Group) or arg not in command.commands:
            break
        words.append(arg)
        command = command.commands[arg]
    return words
