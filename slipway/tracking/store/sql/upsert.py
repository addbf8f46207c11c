"""INSERT ... ON CONFLICT for SQLite, PostgreSQL and MySQL, behind one function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str] = (),
    where: Callable[[Any], ColumnElement[bool]] | None = None,
) -> None:
    """Insert ``rows``; on a conflict on ``keys`` update the ``update`` columns (only where
    ``where(excluded)`` holds, if given; ``excluded`` is the proposed row) or, with no
    ``update`` columns, keep the existing row. ``where`` should be a module-level function,
    so that the statement is built once and reused."""
    if not rows:
        return
    # Statements are built once per shape: building one costs more than running it.
    key = (conn.dialect.name, table.name, tuple(keys), tuple(update), where)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = _statement(conn.dialect.name, table, keys, update, where)
    conn.execute(stmt, list(rows))


_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _statement(
    dialect: str,
    table: Table,
    keys: Sequence[str],
    update: Sequence[str],
    where: Callable[[Any], ColumnElement[bool]] | None,
) -> Any:
    if dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        module: Any = sqlite if dialect == "sqlite" else postgresql
        stmt: Any = module.insert(table)
        if not update:
            return stmt.on_conflict_do_nothing(index_elements=list(keys))
        return stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={c: stmt.excluded[c] for c in update},
            where=where(stmt.excluded) if where is not None else None,
        )
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(table)
        set_ = {c: stmt.inserted[c] for c in update} or {keys[0]: table.c[keys[0]]}
        return stmt.on_duplicate_key_update(**set_)
    raise NotImplementedError(f"upsert is not implemented for {dialect}")
