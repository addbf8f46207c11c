"""MLflow's search grammar for registered models and model versions, parsed into plain data.

A filter is a conjunction (``AND`` only) of comparisons; the tokenizer and parser are the
tracking grammar's (:mod:`slipway.tracking.search`), so quoting and error messages match::

    name LIKE 'fraud-%' AND tags.team = 'risk' AND tags.`model type` != 'legacy'
    name = 'iris' AND version_number >= 3 AND run_id IN ('a1', 'b2')

Registered models: ``name`` and ``tags.<key>`` with ``=``, ``!=``, ``LIKE``, ``ILIKE`` (``name``
also takes ``IN``/``NOT IN``). Model versions add ``version_number`` (numeric comparisons with
an integer), ``run_id`` (``=``, ``!=``, ``IN``, ``NOT IN``, ``LIKE``, ``ILIKE``) and
``source_path`` (``=``, ``!=``, ``LIKE``, ``ILIKE``). Order by ``name``,
``creation_timestamp``, ``last_updated_timestamp`` (``timestamp`` is its alias) and, for
versions, ``version_number``, each ``ASC`` (the default) or ``DESC``. This module knows nothing
of SQL; :mod:`slipway.registry.store.sql.query` compiles what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence

from slipway.exceptions import InvalidFilter
from slipway.tracking import search
from slipway.tracking.search import NUMERIC_OPS, SET_OPS, STRING_OPS, Comparison, OrderBy

MODEL_STRING_KEYS = frozenset({"name"})
VERSION_STRING_KEYS = frozenset({"name", "run_id", "source_path"})
VERSION_NUMERIC_KEYS = frozenset({"version_number"})
_SET_KEYS = frozenset({"name", "run_id"})
_ATTRIBUTE_PREFIXES = frozenset({"attribute", "attributes", "attr"})
_TAG_PREFIXES = frozenset({"tag", "tags"})

MODEL_ORDER_KEYS = ("name", "creation_timestamp", "last_updated_timestamp")
VERSION_ORDER_KEYS = (*MODEL_ORDER_KEYS, "version_number")
_ORDER_ALIASES = {"timestamp": "last_updated_timestamp"}

IS_PROMPT_TAG = "mlflow.prompt.is_prompt"
"""MLflow keeps prompts as registered models with this tag set to ``true``; searches leave
them out unless the filter asks for them (see :func:`asks_for_prompts`)."""


def parse_model_filter(filter_string: str | None) -> list[Comparison]:
    """Parse a registered model filter; an empty filter gives no comparisons."""
    return _parse(filter_string, versions=False)


def parse_version_filter(filter_string: str | None) -> list[Comparison]:
    """Parse a model version filter; an empty filter gives no comparisons."""
    return _parse(filter_string, versions=True)


def _parse(filter_string: str | None, *, versions: bool) -> list[Comparison]:
    if filter_string is None or not filter_string.strip():
        return []
    if not isinstance(filter_string, str):
        raise InvalidFilter(f"Invalid filter {filter_string!r}: expected a string")
    parser = search._Parser(filter_string, "filter")
    result = []
    for prefix, key, key_tok, op, op_tok, value, val_tok in parser.conjunction():
        what = prefix.lower() if prefix is not None else None
        if what in _TAG_PREFIXES:
            _check_op(parser, op, STRING_OPS, f"tag {key!r}", op_tok)
            if not isinstance(value, str):
                raise parser.error(
                    f"expected a quoted string value for tag {key!r}, got {val_tok.text!r}",
                    val_tok,
                )
            result.append(Comparison("tag", key, op, value))
            continue
        if what is not None and what not in _ATTRIBUTE_PREFIXES:
            raise parser.error(
                f"invalid entity type {prefix!r}; expected tags or an attribute", key_tok
            )
        strings = VERSION_STRING_KEYS if versions else MODEL_STRING_KEYS
        numbers = VERSION_NUMERIC_KEYS if versions else frozenset()
        if key in numbers:
            _check_op(parser, op, NUMERIC_OPS, f"attribute {key!r}", op_tok)
            if not isinstance(value, float) or not value.is_integer():
                raise parser.error(
                    f"expected an integer value for {key!r}, got {val_tok.text!r}", val_tok
                )
        elif key in strings:
            allowed = STRING_OPS | SET_OPS if key in _SET_KEYS else STRING_OPS
            _check_op(parser, op, allowed, f"attribute {key!r}", op_tok)
            if isinstance(value, float):
                raise parser.error(
                    f"expected a quoted string value for {key!r}, got {val_tok.text!r}", val_tok
                )
        else:
            valid = sorted(strings | numbers)
            raise parser.error(
                f"invalid search key {key!r}; use {', '.join(valid)} or tags.<key>", key_tok
            )
        result.append(Comparison("attribute", key, op, value))
    return result


def _check_op(
    parser: search._Parser, op: str, allowed: frozenset[str], what: str, token: search._Token
) -> None:
    if op not in allowed:
        raise parser.error(
            f"operator {op!r} is not allowed for {what}; use one of {', '.join(sorted(allowed))}",
            token,
        )


def parse_model_order_by(clauses: Sequence[str] | None) -> list[OrderBy]:
    """``["name ASC", "timestamp DESC"]`` for registered models."""
    return _parse_order(clauses, MODEL_ORDER_KEYS)


def parse_version_order_by(clauses: Sequence[str] | None) -> list[OrderBy]:
    """``["version_number DESC"]`` and friends for model versions."""
    return _parse_order(clauses, VERSION_ORDER_KEYS)


def _parse_order(clauses: Sequence[str] | None, allowed: tuple[str, ...]) -> list[OrderBy]:
    if isinstance(clauses, str):
        clauses = [clauses]
    result: list[OrderBy] = []
    for clause in clauses or []:
        if not isinstance(clause, str) or not clause.strip():
            raise InvalidFilter(f"Invalid order_by clause {clause!r}")
        parser = search._Parser(clause, "order_by clause")
        prefix, key, key_tok = parser.identifier()
        if prefix is not None and prefix.lower() not in _ATTRIBUTE_PREFIXES:
            raise parser.error(f"invalid order_by key {key_tok.text!r}", key_tok)
        key = _ORDER_ALIASES.get(key, key)
        if key not in allowed:
            raise parser.error(
                f"invalid order_by key {key!r}; use one of {', '.join(allowed)} or timestamp",
                key_tok,
            )
        ascending = True
        token = parser.peek()
        if token is not None:
            if not parser.is_word(token, "ASC", "DESC"):
                raise parser.error(f"expected ASC or DESC, got {token.text!r}", token)
            ascending = token.text.upper() == "ASC"
            parser.i += 1
            extra = parser.peek()
            if extra is not None:
                raise parser.error(f"unexpected {extra.text!r}", extra)
        if any(o.key == key for o in result):
            raise InvalidFilter(f"order_by names {key!r} more than once: {list(clauses or [])}")
        result.append(OrderBy("attribute", key, ascending))
    return result


def asks_for_prompts(comparisons: Sequence[Comparison]) -> bool:
    """Whether a filter selects prompts (``tags.`mlflow.prompt.is_prompt` = 'true'``, or
    ``!= 'false'``); other searches leave prompts out, as MLflow does."""
    for cmp in comparisons:
        if cmp.kind == "tag" and cmp.key == IS_PROMPT_TAG and isinstance(cmp.value, str):
            value = cmp.value.lower()
            return (cmp.op == "=" and value == "true") or (cmp.op == "!=" and value == "false")
    return False


__all__ = [
    "IS_PROMPT_TAG",
    "MODEL_ORDER_KEYS",
    "VERSION_ORDER_KEYS",
    "asks_for_prompts",
    "parse_model_filter",
    "parse_model_order_by",
    "parse_version_filter",
    "parse_version_order_by",
]
