"""Alembic environment for the squad's tables (run through ``sporthub.squad.store.migrate``).

Its own version table: the squad's tables may share a PostgreSQL database with the ledger's."""

from alembic import context
from sqlalchemy import create_engine

from sporthub.squad.store import VERSION_TABLE, Base

url = context.config.get_main_option("sqlalchemy.url")
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
