"""Alembic migrations of the sshmint schema (run in code by ``sshmint.server.store.engine``)."""
