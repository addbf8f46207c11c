"""MLflow's search grammar: filters, order_by clauses and page tokens, parsed into plain data.

A filter is a conjunction (``and`` only, as in MLflow) of comparisons::

    metrics.loss < 0.01 and params.lr = '0.1' and tags."my tag" LIKE 'a%'
    attributes.status IN ('FINISHED', 'FAILED') and datasets.context = 'train'

Keys with characters beyond ``[\\w./-]`` are quoted with double quotes or backticks. This
module knows nothing of SQL; the stores compile the parsed :class:`Comparison` objects.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Literal

from slipway.exceptions import InvalidFilter, InvalidParameterValue

Kind = Literal["metric", "param", "tag", "attribute", "dataset"]
Value = float | str | tuple[str, ...]

_PREFIXES: dict[str, Kind] = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "dataset": "dataset",
    "datasets": "dataset",
}
_ATTRIBUTE_ALIASES = {
    "created": "start_time",
    "run name": "run_name",
    "run_id": "run_id",
    "run_uuid": "run_id",
}
RUN_NUMERIC_ATTRIBUTES = frozenset({"start_time", "end_time"})
RUN_STRING_ATTRIBUTES = frozenset(
    {"run_id", "run_name", "status", "user_id", "artifact_uri", "experiment_id", "lifecycle_stage"}
)
DATASET_KEYS = frozenset({"name", "digest", "context"})
EXPERIMENT_NUMERIC_ATTRIBUTES = frozenset({"creation_time", "last_update_time"})
EXPERIMENT_STRING_ATTRIBUTES = frozenset({"name"})

NUMERIC_OPS = frozenset({"=", "!=", ">", ">=", "<", "<="})
STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE"})
SET_OPS = frozenset({"IN", "NOT IN"})


@dataclass(frozen=True, slots=True)
class Comparison:
    """One clause of a filter: ``<kind>.<key> <op> <value>``."""

    kind: Kind
    key: str
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class OrderBy:
    kind: Kind
    key: str
    ascending: bool = True


# ---------------------------------------------------------------------------------------------
# Tokenizer

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<squote>'(?:[^'\\]|\\.|'')*')
  | (?P<dquote>"(?:[^"\\]|\\.|"")*")
  | (?P<btick>`[^`]*`)
  | (?P<op>!=|<>|>=|<=|==|=|>|<)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<word>[A-Za-z_][\w./\-:]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    type: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise InvalidFilter(
                f"Invalid filter {text!r}: unexpected character {text[pos]!r} at position {pos}"
            )
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


def _unquote(token: _Token) -> str:
    body = token.text[1:-1]
    if token.type == "btick":
        return body
    quote = token.text[0]
    return re.sub(r"\\(.)", r"\1", body.replace(quote * 2, quote))


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.what = what
        self.tokens = _tokenize(text)
        self.i = 0

    def error(self, message: str, token: _Token | None = None) -> InvalidFilter:
        where = f" at position {token.pos}" if token is not None else " at the end"
        return InvalidFilter(f"Invalid {self.what} {self.text!r}: {message}{where}")

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str) -> _Token:
        token = self.peek()
        if token is None:
            raise self.error(f"expected {expected}")
        self.i += 1
        return token

    def is_word(self, token: _Token | None, *words: str) -> bool:
        return token is not None and token.type == "word" and token.text.upper() in words

    # identifier: prefix.key | prefix."quoted key" | key | "quoted key"
    def identifier(self) -> tuple[str | None, str, _Token]:
        token = self.take("an identifier such as metrics.loss")
        if token.type in ("dquote", "btick"):
            return None, _unquote(token), token
        if token.type != "word":
            raise self.error(f"expected an identifier, got {token.text!r}", token)
        head, dot, rest = token.text.partition(".")
        if not dot:
            return None, token.text, token
        if rest:
            return head, rest, token
        quoted = self.take("a quoted key after " + repr(token.text))
        if quoted.type not in ("dquote", "btick"):
            raise self.error(f"expected a key after {token.text!r}, got {quoted.text!r}", quoted)
        return head, _unquote(quoted), token

    def operator(self) -> tuple[str, _Token]:
        token = self.take("a comparison operator")
        if token.type == "op":
            op = {"==": "=", "<>": "!="}.get(token.text, token.text)
            return op, token
        if self.is_word(token, "LIKE", "ILIKE", "IN"):
            return token.text.upper(), token
        if self.is_word(token, "NOT"):
            nxt = self.take("IN after NOT")
            if self.is_word(nxt, "IN"):
                return "NOT IN", token
            raise self.error(f"expected IN after NOT, got {nxt.text!r}", nxt)
        raise self.error(f"unknown comparison operator {token.text!r}", token)

    def value(self, op: str) -> tuple[Value, _Token]:
        token = self.take("a value")
        if op in SET_OPS:
            if token.type != "lparen":
                raise self.error(f"{op} expects a parenthesised list, got {token.text!r}", token)
            items: list[str] = []
            while True:
                item = self.take("a quoted string in the list")
                if item.type not in ("squote", "dquote"):
                    raise self.error(
                        f"expected a quoted string in the list, got {item.text!r}", item
                    )
                items.append(_unquote(item))
                sep = self.take("',' or ')'")
                if sep.type == "rparen":
                    return tuple(items), token
                if sep.type != "comma":
                    raise self.error(f"expected ',' or ')', got {sep.text!r}", sep)
        if token.type == "number":
            return float(token.text), token
        if token.type in ("squote", "dquote"):
            return _unquote(token), token
        raise self.error(f"expected a number or a quoted string, got {token.text!r}", token)

    def conjunction(self) -> list[tuple[str | None, str, _Token, str, _Token, Value, _Token]]:
        clauses = []
        while True:
            prefix, key, key_token = self.identifier()
            op, op_token = self.operator()
            value, value_token = self.value(op)
            clauses.append((prefix, key, key_token, op, op_token, value, value_token))
            token = self.peek()
            if token is None:
                return clauses
            if self.is_word(token, "OR"):
                raise self.error("OR is not supported; combine conditions with AND", token)
            if not self.is_word(token, "AND"):
                raise self.error(f"expected AND, got {token.text!r}", token)
            self.i += 1


def parse_run_filter(filter_string: str | None) -> list[Comparison]:
    """Parse a run search filter; an empty filter gives no comparisons."""
    if filter_string is None or not filter_string.strip():
        return []
    parser = _Parser(filter_string, "filter")
    result = []
    for prefix, key, key_tok, op, op_tok, value, val_tok in parser.conjunction():
        kind = _kind_of(parser, prefix, key_tok)
        if kind == "attribute":
            key = _ATTRIBUTE_ALIASES.get(key.lower(), key)
        result.append(_check_run_clause(parser, kind, key, key_tok, op, op_tok, value, val_tok))
    return result


def _kind_of(parser: _Parser, prefix: str | None, token: _Token) -> Kind:
    if prefix is None:
        return "attribute"
    kind = _PREFIXES.get(prefix.lower())
    if kind is None:
        raise parser.error(
            f"invalid entity type {prefix!r}; expected one of metrics, params, tags, "
            "attributes, datasets",
            token,
        )
    return kind


def _check_run_clause(
    parser: _Parser,
    kind: Kind,
    key: str,
    key_tok: _Token,
    op: str,
    op_tok: _Token,
    value: Value,
    val_tok: _Token,
) -> Comparison:
    if kind == "metric":
        _check_op(parser, op, NUMERIC_OPS, "metrics", op_tok)
        if not isinstance(value, float):
            raise parser.error(
                f"expected a numeric value for metric {key!r}, got {val_tok.text!r}", val_tok
            )
    elif kind in ("param", "tag"):
        _check_op(parser, op, STRING_OPS | SET_OPS, f"{kind}s", op_tok)
        _check_string_value(parser, kind, key, value, val_tok)
    elif kind == "dataset":
        if key not in DATASET_KEYS:
            raise parser.error(
                f"invalid dataset attribute {key!r}; expected name, digest or context", key_tok
            )
        _check_op(parser, op, STRING_OPS | SET_OPS, "datasets", op_tok)
        _check_string_value(parser, kind, key, value, val_tok)
    elif key in RUN_NUMERIC_ATTRIBUTES:
        _check_op(parser, op, NUMERIC_OPS, f"attribute {key}", op_tok)
        if not isinstance(value, float):
            raise parser.error(
                f"expected a numeric value for attribute {key!r}, got {val_tok.text!r}", val_tok
            )
    elif key in RUN_STRING_ATTRIBUTES:
        _check_op(parser, op, STRING_OPS | SET_OPS, f"attribute {key}", op_tok)
        _check_string_value(parser, kind, key, value, val_tok)
    else:
        valid = sorted(RUN_NUMERIC_ATTRIBUTES | RUN_STRING_ATTRIBUTES)
        raise parser.error(
            f"invalid attribute key {key!r}; valid keys are {', '.join(valid)}", key_tok
        )
    return Comparison(kind, key, op, value)


def _check_op(parser: _Parser, op: str, allowed: frozenset[str], what: str, token: _Token) -> None:
    if op not in allowed:
        raise parser.error(
            f"operator {op!r} is not allowed for {what}; use one of {', '.join(sorted(allowed))}",
            token,
        )


def _check_string_value(parser: _Parser, kind: str, key: str, value: Value, token: _Token) -> None:
    if isinstance(value, float):
        raise parser.error(
            f"expected a quoted string value for {kind} {key!r}, got {token.text!r}", token
        )


def parse_experiment_filter(filter_string: str | None) -> list[Comparison]:
    """Parse an experiment filter: ``name``, ``creation_time``, ``last_update_time``, ``tags.*``."""
    if filter_string is None or not filter_string.strip():
        return []
    parser = _Parser(filter_string, "filter")
    result = []
    for prefix, key, key_tok, op, op_tok, value, val_tok in parser.conjunction():
        kind = _kind_of(parser, prefix, key_tok)
        if kind == "tag":
            _check_op(parser, op, STRING_OPS | SET_OPS, "tags", op_tok)
            _check_string_value(parser, kind, key, value, val_tok)
        elif kind == "attribute" and key in EXPERIMENT_STRING_ATTRIBUTES:
            _check_op(parser, op, STRING_OPS | SET_OPS, f"attribute {key}", op_tok)
            _check_string_value(parser, kind, key, value, val_tok)
        elif kind == "attribute" and key in EXPERIMENT_NUMERIC_ATTRIBUTES:
            _check_op(parser, op, NUMERIC_OPS, f"attribute {key}", op_tok)
            if not isinstance(value, float):
                raise parser.error(f"expected a numeric value for {key!r}", val_tok)
        else:
            raise parser.error(
                f"invalid experiment search key {key!r}; use name, creation_time, "
                "last_update_time or tags.<key>",
                key_tok,
            )
        result.append(Comparison(kind, key, op, value))
    return result


def parse_order_by(clauses: list[str] | None, *, experiments: bool = False) -> list[OrderBy]:
    """Parse ``["metrics.loss ASC", "start_time DESC"]`` into :class:`OrderBy` items."""
    result = []
    for clause in clauses or []:
        if not isinstance(clause, str) or not clause.strip():
            raise InvalidFilter(f"Invalid order_by clause {clause!r}")
        parser = _Parser(clause, "order_by clause")
        prefix, key, key_tok = parser.identifier()
        ascending = True
        token = parser.peek()
        if token is not None:
            if not parser.is_word(token, "ASC", "DESC"):
                raise parser.error(f"expected ASC or DESC, got {token.text!r}", token)
            ascending = token.text.upper() == "ASC"
            parser.i += 1
            if parser.peek() is not None:
                extra = parser.peek()
                raise parser.error(f"unexpected {extra.text!r}" if extra else "", extra)
        kind = _kind_of(parser, prefix, key_tok)
        if experiments:
            allowed = {"name", "experiment_id", "creation_time", "last_update_time"}
            if kind != "attribute" or key not in allowed:
                raise parser.error(
                    f"invalid order_by key {key!r}; use one of {', '.join(sorted(allowed))}",
                    key_tok,
                )
        elif kind == "attribute":
            key = _ATTRIBUTE_ALIASES.get(key.lower(), key)
            if key not in RUN_NUMERIC_ATTRIBUTES | RUN_STRING_ATTRIBUTES:
                raise parser.error(f"invalid order_by attribute {key!r}", key_tok)
        elif kind == "dataset":
            raise parser.error("ordering by datasets is not supported", key_tok)
        result.append(OrderBy(kind, key, ascending))
    return result


# ---------------------------------------------------------------------------------------------
# Page tokens: opaque to clients, base64 of {"offset": N}


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = payload["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidParameterValue(
            f"Invalid page token {token!r}: it could not be decoded"
        ) from exc
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidParameterValue(f"Invalid page token {token!r}: bad offset")
    return offset
