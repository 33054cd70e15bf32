"""Alembic environment: runs on the engine handed over by storage.db (no alembic.ini needed)."""

from alembic import context

from notifier.storage.schema import metadata

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
