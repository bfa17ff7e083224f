"""One database path for the whole studio: SQLAlchemy 2 ORM over SQLite (WAL, foreign keys,
busy timeout, synchronous=FULL) or PostgreSQL by URL, migrated by Alembic.

Writes go through `Database.write()`, whose transaction begins IMMEDIATE on SQLite: a deferred
read-then-write transaction fails with "database is locked" under contention even with a busy
timeout, because SQLite cannot upgrade its read lock while another writer waits. On PostgreSQL
the same guarantee (one writer at a time, each reading what the previous one committed) comes
from a transaction-scoped advisory lock taken first in every write transaction: under READ
COMMITTED each later statement then sees every earlier writer's commit, so a read-then-write
never loses an update, and writers queue on the lock instead of failing."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

BUSY_TIMEOUT_MS = 30_000
WRITE_LOCK_KEY = 0x6261726B  # "bark": PostgreSQL's advisory lock for write transactions (per database)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        engine = create_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "postgresql":
            @event.listens_for(engine, "begin")
            def _on_begin_server(conn):
                if conn.get_execution_options().get("sqlite_begin", "IMMEDIATE") == "IMMEDIATE":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")

        return engine
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=FULL")  # an acknowledged write (a vote) survives a power cut
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Database:
    """Engine plus the two kinds of transaction the studio uses."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _make_engine(url)
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(self.engine.execution_options(sqlite_begin="DEFERRED"),
                                    expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction (BEGIN IMMEDIATE on SQLite, the write lock on PostgreSQL); commits on success, rolls back on error.
        A full disk raises DiskFull (one clear line) instead of SQLite's error."""
        with self._disk_full_as_user_error(), self._writer() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only snapshot; never upgrades to a write lock."""
        with self._disk_full_as_user_error(), self._reader() as session, session.begin():
            yield session

    @contextmanager
    def _disk_full_as_user_error(self):
        from studio.errors import DiskFull, is_disk_full

        try:
            yield
        except DiskFull:
            raise
        except Exception as exc:
            db_file = self.engine.url.database if self.engine.url.get_backend_name() == "sqlite" else None
            if is_disk_full(exc, Path(db_file).parent if db_file else None):
                raise DiskFull() from exc
            raise

    # Schema --------------------------------------------------------------------
    def alembic_config(self):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url)
        cfg.attributes["engine"] = self.engine
        return cfg

    def upgrade(self) -> None:
        """Bring the schema to the newest revision of the (linear) chain. A workspace made while the
        chain branched has its several stored heads collapsed onto the chain first (see
        studio.migrations.legacy)."""
        from alembic import command
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        from studio.migrations.legacy import collapse_branched_heads

        cfg = self.alembic_config()
        script = ScriptDirectory.from_config(cfg)
        head = script.get_current_head()  # raises if the chain ever forks again
        chain = [rev.revision for rev in reversed(list(script.walk_revisions()))]

        def run_migration(conn, revision: str) -> None:
            from alembic.operations import Operations

            with Operations.context(MigrationContext.configure(conn)):
                script.get_revision(revision).module.upgrade()

        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_heads()
        if tuple(current) == (head,):
            return
        with self.engine.begin() as conn:  # the write lock: one process collapses, the others wait
            collapse_branched_heads(conn, chain, run_migration)
        command.upgrade(cfg, "head")

    def backup(self, target: Path) -> Path:
        """Online copy through SQLite's backup API (never a file copy of a live database)."""
        import sqlite3

        if not self.url.startswith("sqlite"):
            raise RuntimeError("backup covers the embedded SQLite database; use pg_dump for PostgreSQL")
        target = Path(target)
        raw = self.engine.raw_connection()
        try:
            dest = sqlite3.connect(target)
            try:
                raw.driver_connection.backup(dest)
            finally:
                dest.close()
        finally:
            raw.close()
        return target

    def dispose(self) -> None:
        self.engine.dispose()
