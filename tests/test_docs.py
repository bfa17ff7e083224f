"""The README is the manual: every command the CLI offers is shown there, and the two set-up
commands open it (Datasette's habit: docs tested against the code)."""
from pathlib import Path

from studio.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    top = "\n".join(README.splitlines()[:10])
    assert "make serve" in top and "make test" in top


def test_every_command_is_documented():
    missing = [name for name in main.commands if f"bark-studio {name}" not in README]
    assert missing == [], f"commands not shown in README.md: {missing}"


def test_every_subcommand_is_documented_or_listed_in_help():
    """Each group's subcommands either appear in README or in the group's own --help summary."""
    import click

    undocumented = []
    for name, cmd in main.commands.items():
        if isinstance(cmd, click.Group):
            for sub in cmd.commands:
                if f"bark-studio {name} {sub}" not in README and not (cmd.commands[sub].help or cmd.commands[sub].short_help):
                    undocumented.append(f"{name} {sub}")
    assert undocumented == [], f"subcommands with neither README mention nor help text: {undocumented}"
