"""The migrations form one chain, and a workspace made while they branched upgrades onto it
without losing a row. The branched databases are built here by today's migration files, copied
into a temp folder with the down_revisions they shipped with, and run with `upgrade heads`."""
from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from studio.db import MIGRATIONS_DIR, Database
from studio.migrations.legacy import BRANCHED_PARENTS, MigrationStateError, linear_plan
from studio.schema import metadata

ALL_BRANCHED = list(BRANCHED_PARENTS)


def branched_scripts(folder: Path, revisions: list[str], renamed: dict[str, str] | None = None) -> Path:
    """A copy of today's migration files for `revisions`, each with its branched down_revision
    (and ids renamed as `renamed` says, as an older version named them)."""
    renamed = renamed or {}
    versions = folder / "versions"
    versions.mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        shutil.copy(MIGRATIONS_DIR / name, folder / name)
    for revision in revisions:
        text = (MIGRATIONS_DIR / "versions" / f"{revision}.py").read_text()
        parent = BRANCHED_PARENTS[revision]
        text = re.sub(r"^down_revision = .*$", f"down_revision = {parent!r}", text, flags=re.M)
        text = re.sub(r"^revision = .*$", f"revision = {renamed.get(revision, revision)!r}", text, flags=re.M)
        (versions / f"{renamed.get(revision, revision)}.py").write_text(text)
    return folder


def make_branched_database(url: str, scripts: Path) -> dict[str, list[dict]]:
    """Migrate an empty database with the branched scripts, put a row (every column filled) in
    each table, and return the rows as stored."""
    db = Database(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(scripts))
    cfg.attributes["engine"] = db.engine
    command.upgrade(cfg, "heads")
    reflected = sa.MetaData()
    reflected.reflect(db.engine)
    tables = [t for t in reflected.sorted_tables if t.name != "alembic_version"]
    with db.engine.begin() as conn:
        for table in tables:
            conn.execute(table.insert().values({c.name: _value(c) for c in table.columns}))
    rows = _rows(db.engine, tables)
    db.dispose()
    return rows


def _value(column: sa.Column):
    if column.foreign_keys or (column.primary_key and isinstance(column.type, sa.Integer)):
        return 1  # every table holds one row, id 1, so every reference points at a real row
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return True
    if isinstance(kind, sa.Integer):
        return 7
    if isinstance(kind, (sa.Float, sa.Numeric)):
        return 2.5
    if isinstance(kind, sa.DateTime):
        return datetime(2026, 11, 30, 12, 0, 1)
    if isinstance(kind, sa.JSON):
        return {"kept": [1, "two"]}
    return f"{column.table.name}.{column.name}"[: getattr(kind, "length", None) or 200]


def _rows(engine, tables) -> dict[str, list[dict]]:
    with engine.connect() as conn:
        return {t.name: [dict(r._mapping) for r in conn.execute(sa.select(*t.columns))] for t in tables}


def _stored_versions(engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def assert_upgraded_without_loss(url: str, before: dict[str, list[dict]]) -> None:
    db = Database(url)
    try:
        db.upgrade()
        assert _stored_versions(db.engine) == [ScriptDirectory.from_config(db.alembic_config()).get_current_head()]
        reflected = sa.MetaData()
        reflected.reflect(db.engine)
        with db.engine.connect() as conn:
            after = {name: [dict(r._mapping) for r in conn.execute(
                sa.select(*(reflected.tables[name].c[column] for column in rows[0])))]
                for name, rows in before.items()}
        assert after == before
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        db.dispose()


def test_the_migrations_are_one_chain_in_number_order():
    script = ScriptDirectory.from_config(Database("sqlite://").alembic_config())
    chain = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert len(script.get_heads()) == 1
    assert chain == sorted(chain) and chain[:8] == ALL_BRANCHED
    for rev in script.walk_revisions():
        assert rev.down_revision == (chain[chain.index(rev.revision) - 1] if rev.revision != chain[0] else None)


@pytest.mark.parametrize("revisions, renamed, stored", [
    # today's branched chain: six heads
    (ALL_BRANCHED, {}, ["0003_voices", "0004_training", "0005_listening", "0006_experiments",
                        "0007_clip_states", "0008_worker_gpus"]),
    # before the clip states, with the GPU columns under their first id: 0007 is run late
    ([r for r in ALL_BRANCHED if r != "0007_clip_states"], {"0008_worker_gpus": "0007_worker_gpus"},
     ["0002_datasets", "0003_voices", "0004_training", "0005_listening", "0006_experiments", "0007_worker_gpus"]),
], ids=["today", "gpu-columns-before-clip-states"])
def test_a_branched_sqlite_workspace_upgrades_without_loss(tmp_path, revisions, renamed, stored):
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    before = make_branched_database(url, branched_scripts(tmp_path / "old", revisions, renamed))
    assert _stored_versions(sa.create_engine(url)) == stored  # the several heads the old code stored
    assert all(len(rows) == 1 for rows in before.values()) and len(before) >= 20
    assert_upgraded_without_loss(url, before)


def test_a_branched_postgresql_workspace_upgrades_without_loss(tmp_path, postgres_server):
    url = postgres_server.new_database()
    before = make_branched_database(url, branched_scripts(tmp_path / "old", ALL_BRANCHED))
    assert len(_stored_versions(sa.create_engine(url))) == 6
    assert_upgraded_without_loss(url, before)


def test_a_version_table_no_version_wrote_is_refused_and_left_alone(tmp_path):
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    make_branched_database(url, branched_scripts(tmp_path / "old", ALL_BRANCHED))
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # 0002 is 0007's parent: the branched code never stored both
        conn.execute(sa.text("DELETE FROM alembic_version WHERE version_num NOT IN ('0007_clip_states')"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('0002_datasets')"))
    with pytest.raises(MigrationStateError, match="0002_datasets, 0007_clip_states"):
        Database(url).upgrade()
    assert _stored_versions(engine) == ["0002_datasets", "0007_clip_states"]


@pytest.mark.parametrize("stored, message", [
    (["0003_voices", "0099_from_the_future"], "does not know"),
    (["0001_jobs", "0003_voices"], "not one any version"),  # 0001 is 0003's parent: never both stored
])
def test_unknown_or_impossible_head_sets_are_refused(stored, message):
    chain = ALL_BRANCHED
    with pytest.raises(MigrationStateError, match=message):
        linear_plan(stored, chain)


def test_older_branched_states_collapse_to_the_newest_revision_they_imply():
    chain = ALL_BRANCHED
    assert linear_plan(["0002_datasets", "0003_voices", "0004_training", "0005_listening", "0006_experiments"],
                       chain) == ([], "0006_experiments")
    assert linear_plan(["0008_worker_gpus"], chain) is None  # one row: already the linear chain's reading
