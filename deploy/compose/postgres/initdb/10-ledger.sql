-- The gateway's usage ledger lives in a database of its own: the hub's database has Alembic
-- version table of its own (alembic_version), and the two schemas must not share it.
CREATE DATABASE ledger OWNER sporthub;
