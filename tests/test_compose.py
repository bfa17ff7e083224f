"""docker-compose.yml stays runnable without Docker here (`docker compose config` cannot run):
every service's command parses with the real `bark-studio` CLI's own parser, every healthcheck
names something that exists, and the studio, workers and servers agree on one database, one queue
and one workspace."""
from __future__ import annotations

import importlib.util
import tomllib
import warnings

import click
import pytest
import yaml
from sqlalchemy.engine import make_url

from studio.cli import main
from tests.conftest import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
STUDIO_SERVICES = {n: s for n, s in SERVICES.items() if s.get("image", "").startswith("bark-studio")}


def parse_cli(argv: list[str]) -> click.Command:
    """Parse argv (after `bark-studio`) down to its leaf command with click itself; raises
    click.UsageError (an unknown command, option or bad value) as the real CLI would."""
    group, ctx, args = main, click.Context(main, info_name="bark-studio"), list(argv)
    while True:
        cmd = group.get_command(ctx, args[0]) if args else None
        if cmd is None:
            raise click.UsageError(f"no such command: {args[:1]}")
        ctx = cmd.make_context(args[0], args[1:], parent=ctx)
        if not isinstance(cmd, click.Group):
            assert not ctx.args, f"unexpected arguments {ctx.args}"
            return cmd
        with warnings.catch_warnings():  # click 8 keeps the subcommand's name apart; click 9 in ctx.args
            warnings.simplefilter("ignore", DeprecationWarning)
            group, args = cmd, [*getattr(ctx, "protected_args", []), *ctx.args]


def test_compose_runs_postgres_redis_the_studio_and_two_worker_profiles():
    assert {"postgres", "redis", "studio", "worker", "worker-1"} <= set(SERVICES)
    assert set(STUDIO_SERVICES) == {"studio", "worker", "worker-1"}
    assert "profiles" not in SERVICES["worker"] and SERVICES["worker-1"]["profiles"] == ["gpu1"]
    for name, svc in SERVICES.items():
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


@pytest.mark.parametrize("name", sorted(STUDIO_SERVICES))
def test_each_services_command_parses_with_the_cli(name):
    command = STUDIO_SERVICES[name]["command"]
    assert command[0] == "bark-studio"
    parse_cli(command[1:])


def test_the_cli_parser_check_catches_a_broken_command():
    assert parse_cli(["jobs", "list", "--json"]).name == "list"  # subgroups resolve to their command
    with pytest.raises(click.UsageError):
        parse_cli(["jobs", "lst"])
    with pytest.raises(click.UsageError):
        parse_cli(["worker", "--gpus-per-worker", "2"])
    with pytest.raises(click.UsageError):
        parse_cli(["serv", "--port", "7860"])
    with pytest.raises(click.BadParameter):
        parse_cli(["serve", "--port", "http"])


@pytest.mark.parametrize("name", sorted(STUDIO_SERVICES))
def test_each_studio_healthcheck_names_real_code(name):
    test = STUDIO_SERVICES[name]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python"
    if test[2] == "-m":
        assert importlib.util.find_spec(test[3]) is not None, f"{name}: no module {test[3]}"
    else:
        assert test[2] == "-c"
        compile(test[3], f"{name} healthcheck", "exec")


def test_studio_and_workers_share_one_database_queue_and_workspace():
    pg = SERVICES["postgres"]["environment"]
    gpus = []
    for name, svc in STUDIO_SERVICES.items():
        env = svc["environment"]
        url = make_url(env["BARK_STUDIO_DATABASE_URL"])
        assert (url.drivername, url.host, url.username, url.password, url.database) == \
            ("postgresql+psycopg", "postgres", pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])
        url.get_dialect()  # the driver the URL names is one SQLAlchemy knows
        assert make_url(env["BARK_STUDIO_REDIS_URL"].replace("redis://", "redis+x://")).host == "redis"
        assert env["BARK_STUDIO_HOME"] == "/workspace" and svc["volumes"] == ["workspace:/workspace"]
        assert set(svc["depends_on"]) == {"postgres", "redis"}
        if name.startswith("worker"):
            assert svc["stop_signal"] == "SIGINT"
            devices = svc["deploy"]["resources"]["reservations"]["devices"]
            assert devices[0]["device_ids"] == [env["BARK_STUDIO_GPU"]]  # the GPU it reserves is the one it locks
            gpus.append(env["BARK_STUDIO_GPU"])
    assert sorted(gpus) == ["0", "1"]
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("psycopg") for d in extras["postgres"])
    assert 'pip install -e ".[postgres]"' in (REPO / "Dockerfile").read_text()  # the image has the driver
