"""Alembic environment for the gateway ledger (run through ``sporthub.gateway.ledger.migrate``)."""

from alembic import context
from sqlalchemy import create_engine

from sporthub.gateway.ledger import Base

url = context.config.get_main_option("sqlalchemy.url")
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
