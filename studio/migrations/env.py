"""Alembic environment: runs on the engine the studio already opened (WAL, pragmas)."""
from alembic import context

from studio.schema import metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    from sqlalchemy import create_engine

    engine = create_engine(config.get_main_option("sqlalchemy.url"))

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=True)  # SQLite alters tables by copy
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
