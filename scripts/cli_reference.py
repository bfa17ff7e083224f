"""Write docs/CLI.md: every `bark-studio` command's --help, generated from the CLI itself.

    python scripts/cli_reference.py          # rewrite docs/CLI.md
    python scripts/cli_reference.py --check  # exit 1 when docs/CLI.md differs from the CLI

tests/test_docs.py holds the committed file equal to what this writes."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import click

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "docs" / "CLI.md"
WIDTH = 100  # fixed, so the text never depends on the terminal that ran this

HEADER = """# `bark-studio` command reference

Generated from the CLI by `python scripts/cli_reference.py`; do not edit by hand (a test holds
this file equal to the CLI). The README walks through the commands in the order of the work; this
page lists every command's `--help`.
"""


def walk(command: click.Command, ctx: click.Context) -> Iterator[tuple[str, click.Context]]:
    """(command path, its context) for `command` and every command under it, in name order."""
    yield ctx.command_path, ctx
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            sub = command.commands[name]
            yield from walk(sub, click.Context(sub, info_name=name, parent=ctx))


def command_paths() -> list[str]:
    """Every command path, e.g. "bark-studio dataset trim"."""
    from studio.cli import main

    return [path for path, _ in walk(main, _root_context(main))]


def _root_context(main: click.Command) -> click.Context:
    return click.Context(main, info_name="bark-studio", terminal_width=WIDTH, max_content_width=WIDTH)


def render() -> str:
    from studio.cli import main

    sections = [HEADER]
    for path, ctx in walk(main, _root_context(main)):
        sections.append(f"## {path}\n\n```text\n{ctx.command.get_help(ctx)}\n```\n")
    return "\n".join(sections)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET.relative_to(REPO)} is out of date: run python scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(exist_ok=True)
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main(sys.argv[1:]))
