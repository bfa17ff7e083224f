"""Workspaces made while the migrations branched: bring their version table onto the linear chain.

Until the chain was made linear, 0002..0006 and 0008 each followed 0001_jobs and 0007 followed
0002, and the studio ran `upgrade heads`, so a database's `alembic_version` holds several rows
(e.g. 0003..0008). On the linear chain those rows name each other's ancestors, which Alembic
refuses. Before upgrading, such a table is collapsed to the one row the linear chain means by it:
the set of migrations applied is read through the old branched graph, any migration the linear
chain puts before the newest applied one but the branches had not reached yet is run (the old
branches touched disjoint tables, so their order never mattered), and the single newest revision
is stored. A state the old graph could not have produced is refused, and nothing is changed."""
from __future__ import annotations

from typing import Callable, Sequence

import sqlalchemy as sa

from studio.errors import UserError

# The branched graph as it shipped: revision -> the revision it followed (its down_revision).
BRANCHED_PARENTS: dict[str, str | None] = {
    "0001_jobs": None,
    "0002_datasets": "0001_jobs",
    "0003_voices": "0001_jobs",
    "0004_training": "0001_jobs",
    "0005_listening": "0001_jobs",
    "0006_experiments": "0001_jobs",
    "0007_clip_states": "0002_datasets",
    "0008_worker_gpus": "0001_jobs",
}
# Revision ids a workspace may hold from before a rename: the workers' GPU columns were briefly
# "0007_worker_gpus", until the clip states took 0007.
RENAMED = {"0007_worker_gpus": "0008_worker_gpus"}


class MigrationStateError(UserError):
    """The database's stored migration state is not one this version can upgrade."""


def _branched_ancestry(revision: str) -> set[str]:
    applied = set()
    while revision is not None:
        applied.add(revision)
        revision = BRANCHED_PARENTS[revision]
    return applied


def linear_plan(stored: Sequence[str], chain: Sequence[str]) -> tuple[list[str], str] | None:
    """For the revisions stored in alembic_version and the linear `chain` (oldest first): None when
    there is nothing to collapse, else (migrations still to run, in chain order; revision to store).
    Raises MigrationStateError for a state the branched graph could not have produced."""
    heads = [RENAMED.get(r, r) for r in stored]
    if len(heads) <= 1 and heads == list(stored):
        return None  # one row: the linear chain reads it as Alembic does
    described = ", ".join(sorted(stored))
    unknown = [r for r in heads if r not in BRANCHED_PARENTS or r not in chain]
    if unknown:
        raise MigrationStateError(
            f"the database records migrations this version of Bark Studio does not know ({described}); "
            "open it with the version that made it, or restore a backup")
    applied = set().union(*(_branched_ancestry(r) for r in heads))
    implied_heads = {r for r in applied if not any(BRANCHED_PARENTS[o] == r for o in applied)}
    if implied_heads != set(heads) or len(heads) != len(set(heads)):
        raise MigrationStateError(
            f"the database's migration state ({described}) is not one any version of Bark Studio wrote; "
            "it was edited by hand or by another tool; restore a backup")
    newest = max(applied, key=chain.index)
    missing = [r for r in chain[:chain.index(newest)] if r not in applied]
    return missing, newest


def collapse_branched_heads(conn: sa.Connection, chain: Sequence[str],
                            run_migration: Callable[[sa.Connection, str], None]) -> str | None:
    """Within the caller's (write) transaction on `conn`: collapse a branched version table onto the
    linear chain, running what it lacks through `run_migration`. Returns the revision stored, or
    None when the table needed nothing."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    stored = list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    plan = linear_plan(stored, chain)
    if plan is None:
        return None
    missing, newest = plan
    for revision in missing:
        run_migration(conn, revision)
    conn.execute(sa.text("DELETE FROM alembic_version"))
    conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": newest})
    return newest
