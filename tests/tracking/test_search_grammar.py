"""The search grammar on its own: filters, order_by clauses and page tokens, without a store."""

from __future__ import annotations

import base64
import json

import pytest

from slipway.exceptions import InvalidFilter, InvalidParameterValue
from slipway.tracking.search import (
    Comparison,
    OrderBy,
    decode_page_token,
    encode_page_token,
    parse_experiment_filter,
    parse_order_by,
    parse_run_filter,
)

# -- run filters -----------------------------------------------------------------------------

RUN_FILTERS = [
    ("metrics.loss < 0.5", [Comparison("metric", "loss", "<", 0.5)]),
    ("metric.loss >= 1", [Comparison("metric", "loss", ">=", 1.0)]),
    ("METRICS.loss = 1", [Comparison("metric", "loss", "=", 1.0)]),
    ("metrics.loss == -2", [Comparison("metric", "loss", "=", -2.0)]),
    ("metrics.loss <> +3", [Comparison("metric", "loss", "!=", 3.0)]),
    ("metrics.loss != .5", [Comparison("metric", "loss", "!=", 0.5)]),
    ("metrics.loss > 1e-3", [Comparison("metric", "loss", ">", 0.001)]),
    ("metrics.loss > 2E3", [Comparison("metric", "loss", ">", 2000.0)]),
    ("metrics.loss > 7.", [Comparison("metric", "loss", ">", 7.0)]),
    ("metrics.loss<=0", [Comparison("metric", "loss", "<=", 0.0)]),
    ("metrics.a.b/c-d:e > 1", [Comparison("metric", "a.b/c-d:e", ">", 1.0)]),
    ("metrics.`my metric` > 1", [Comparison("metric", "my metric", ">", 1.0)]),
    ('metrics."my metric" > 1', [Comparison("metric", "my metric", ">", 1.0)]),
    ('metrics."say ""hi""" > 1', [Comparison("metric", 'say "hi"', ">", 1.0)]),
    ("params.lr = '0.1'", [Comparison("param", "lr", "=", "0.1")]),
    ("param.lr = '0.1'", [Comparison("param", "lr", "=", "0.1")]),
    ("parameter.lr != '0.1'", [Comparison("param", "lr", "!=", "0.1")]),
    ("parameters.lr LIKE '0.%'", [Comparison("param", "lr", "LIKE", "0.%")]),
    ("params.lr like '0.%'", [Comparison("param", "lr", "LIKE", "0.%")]),
    ("params.lr ILIKE '%A'", [Comparison("param", "lr", "ILIKE", "%A")]),
    ('params.lr = "double"', [Comparison("param", "lr", "=", "double")]),
    ("params.x = 'it''s'", [Comparison("param", "x", "=", "it's")]),
    ("params.x = 'it\\'s'", [Comparison("param", "x", "=", "it's")]),
    ('params.x = "say \\"hi\\""', [Comparison("param", "x", "=", 'say "hi"')]),
    ("params.x = ''", [Comparison("param", "x", "=", "")]),
    ("params.x = '  spaced  '", [Comparison("param", "x", "=", "  spaced  ")]),
    ("params.x = 'and or = <'", [Comparison("param", "x", "=", "and or = <")]),
    ("params.x IN ('a')", [Comparison("param", "x", "IN", ("a",))]),
    ("params.x in ('a', \"b\",'c')", [Comparison("param", "x", "IN", ("a", "b", "c"))]),
    ("params.x NOT IN ('a', 'b')", [Comparison("param", "x", "NOT IN", ("a", "b"))]),
    ("params.x not  in ('a')", [Comparison("param", "x", "NOT IN", ("a",))]),
    ("tags.t = 'v'", [Comparison("tag", "t", "=", "v")]),
    ("tag.`a b-c` = 'v'", [Comparison("tag", "a b-c", "=", "v")]),
    ("tags.mlflow.runName = 'r'", [Comparison("tag", "mlflow.runName", "=", "r")]),
    ("attributes.status = 'RUNNING'", [Comparison("attribute", "status", "=", "RUNNING")]),
    ("attribute.status != 'A'", [Comparison("attribute", "status", "!=", "A")]),
    ("attr.user_id LIKE 'a%'", [Comparison("attribute", "user_id", "LIKE", "a%")]),
    ("run.run_name ILIKE 'x'", [Comparison("attribute", "run_name", "ILIKE", "x")]),
    ("status IN ('A', 'B')", [Comparison("attribute", "status", "IN", ("A", "B"))]),
    ("attributes.`run name` = 'x'", [Comparison("attribute", "run_name", "=", "x")]),
    ("`Run Name` = 'x'", [Comparison("attribute", "run_name", "=", "x")]),
    ("attributes.run_uuid = 'abc'", [Comparison("attribute", "run_id", "=", "abc")]),
    ("attributes.run_id NOT IN ('a')", [Comparison("attribute", "run_id", "NOT IN", ("a",))]),
    ("attributes.created > 5", [Comparison("attribute", "start_time", ">", 5.0)]),
    ("start_time <= 5", [Comparison("attribute", "start_time", "<=", 5.0)]),
    ("attributes.end_time != 0", [Comparison("attribute", "end_time", "!=", 0.0)]),
    ("attributes.experiment_id = '1'", [Comparison("attribute", "experiment_id", "=", "1")]),
    (
        "attributes.artifact_uri LIKE 's3:%'",
        [Comparison("attribute", "artifact_uri", "LIKE", "s3:%")],
    ),
    (
        "attributes.lifecycle_stage = 'active'",
        [Comparison("attribute", "lifecycle_stage", "=", "active")],
    ),
    ("datasets.name = 'iris'", [Comparison("dataset", "name", "=", "iris")]),
    ("dataset.digest IN ('a', 'b')", [Comparison("dataset", "digest", "IN", ("a", "b"))]),
    ("datasets.context ILIKE 'TRAIN%'", [Comparison("dataset", "context", "ILIKE", "TRAIN%")]),
    (
        "metrics.a > 1 and params.b = 'x' AND tags.c != 'y' And attributes.status = 'S'",
        [
            Comparison("metric", "a", ">", 1.0),
            Comparison("param", "b", "=", "x"),
            Comparison("tag", "c", "!=", "y"),
            Comparison("attribute", "status", "=", "S"),
        ],
    ),
    (
        "  metrics.a>1\n\tand\tparams.b='x'  ",
        [Comparison("metric", "a", ">", 1.0), Comparison("param", "b", "=", "x")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), RUN_FILTERS, ids=[t for t, _ in RUN_FILTERS])
def test_parse_run_filter(text: str, expected: list[Comparison]) -> None:
    assert parse_run_filter(text) == expected


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_empty_run_filter(text: str | None) -> None:
    assert parse_run_filter(text) == []


def test_numbers_are_floats_and_strings_stay_strings() -> None:
    (cmp,) = parse_run_filter("metrics.x = 10")
    assert isinstance(cmp.value, float)
    (cmp,) = parse_run_filter("params.x = '10'")
    assert cmp.value == "10"


# (filter, text the message must contain besides the echoed filter, error position or None)
BAD_RUN_FILTERS = [
    ("metrics.loss << 1", "'<'", 14),
    ("metrics.loss > 'abc'", "'abc'", 15),
    ("params.lr > '1'", "'>'", 10),
    ("params.lr = 1", "'1'", 12),
    ("foo.bar = 1", "'foo'", 0),
    ("attributes.nope = 'x'", "'nope'", 0),
    ("attributes.STATUS = 'x'", "'STATUS'", 0),
    ("datasets.size = 'x'", "'size'", 0),
    ("metrics.a > 1 or metrics.b < 2", "OR", 14),
    ("metrics.a > 1 OR metrics.b < 2", "OR", 14),
    ("metrics.a >", "value", None),
    ("metrics.a", "operator", None),
    ("metrics.a > 1 and", "identifier", None),
    ("metrics.a > 1 metrics.b < 2", "'metrics.b'", 14),
    ("params.x IN 'a'", "'a'", 12),
    ("params.x IN ('a'", "','", None),
    ("params.x IN ()", "')'", 13),
    ("params.x IN ('a',)", "')'", 17),
    ("params.x IN ('a' 'b')", "'b'", 17),
    ("params.x IN (a)", "'a'", 13),
    ("params.x NOT LIKE 'a'", "'LIKE'", 13),
    ("params.x NOT", "IN", None),
    ("params.x BETWEEN 'a'", "'BETWEEN'", 9),
    ("params.x = 'abc", "'", 11),
    ('params.x = "abc', '"', 11),
    ("tags.`abc = 'x'", "`", 5),
    ("metrics.loss LIKE '1'", "'LIKE'", 13),
    ("metrics.loss IN (1)", "'1'", 17),
    ("metrics.loss > abc", "'abc'", 15),
    ("attributes.start_time = 'x'", "'x'", 24),
    ("attributes.start_time LIKE '1'", "'LIKE'", 22),
    ("attributes.status >= 'A'", "'>='", 18),
    ("datasets.name < 'a'", "'<'", 14),
    ("metrics.loss > 1 $", "'$'", 17),
    ("params.x = 'a' && params.y = 'b'", "'&'", 15),
    ("params.x = 'a' || params.y = 'b'", "'|'", 15),
    ("tags. = 'x'", "'='", 6),
    ("= 1", "'='", 0),
    ("'quoted' = 1", "\"'quoted'\"", 0),
    ("metrics.loss > 1.2.3", "'1'", 15),
    ("(metrics.loss > 1)", "'('", 0),
]


@pytest.mark.parametrize(
    ("text", "fragment", "position"), BAD_RUN_FILTERS, ids=[b[0] for b in BAD_RUN_FILTERS]
)
def test_invalid_run_filter(text: str, fragment: str, position: int | None) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_run_filter(text)
    err = info.value
    assert err.error_code == "INVALID_PARAMETER_VALUE"
    assert isinstance(err, InvalidParameterValue)
    detail = err.message.replace(repr(text), "")
    assert fragment in detail, err.message
    if position is not None:
        assert f"position {position}" in detail, err.message
    else:
        assert "position" not in detail, err.message


# -- experiment filters ----------------------------------------------------------------------

EXPERIMENT_FILTERS = [
    ("name = 'x'", [Comparison("attribute", "name", "=", "x")]),
    ("attributes.name LIKE 'x%'", [Comparison("attribute", "name", "LIKE", "x%")]),
    ("name ILIKE '%X'", [Comparison("attribute", "name", "ILIKE", "%X")]),
    ("name IN ('a', 'b')", [Comparison("attribute", "name", "IN", ("a", "b"))]),
    ("name NOT IN ('a')", [Comparison("attribute", "name", "NOT IN", ("a",))]),
    ("creation_time > 5", [Comparison("attribute", "creation_time", ">", 5.0)]),
    ("attributes.last_update_time <= 5", [Comparison("attribute", "last_update_time", "<=", 5.0)]),
    ("tags.team = 'a'", [Comparison("tag", "team", "=", "a")]),
    ("tags.`my tag` != 'a'", [Comparison("tag", "my tag", "!=", "a")]),
    (
        "name LIKE 'a%' and tags.t = 'b'",
        [Comparison("attribute", "name", "LIKE", "a%"), Comparison("tag", "t", "=", "b")],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), EXPERIMENT_FILTERS, ids=[t for t, _ in EXPERIMENT_FILTERS]
)
def test_parse_experiment_filter(text: str, expected: list[Comparison]) -> None:
    assert parse_experiment_filter(text) == expected


def test_empty_experiment_filter() -> None:
    assert parse_experiment_filter(None) == []
    assert parse_experiment_filter("  ") == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("metrics.loss > 1", "'loss'"),
        ("params.lr = 'x'", "'lr'"),
        ("datasets.name = 'x'", "'name'"),
        ("status = 'RUNNING'", "'status'"),
        ("experiment_id = '1'", "'experiment_id'"),
        ("name > 'a'", "'>'"),
        ("name = 1", "'1'"),
        ("creation_time = 'x'", "position 16"),
        ("creation_time LIKE '1'", "'LIKE'"),
        ("tags.t > 'a'", "'>'"),
        ("tags.t = 1", "'1'"),
        ("foo.bar = 'x'", "'foo'"),
        ("name = 'a' or name = 'b'", "OR"),
    ],
)
def test_invalid_experiment_filter(text: str, fragment: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_experiment_filter(text)
    assert fragment in info.value.message.replace(repr(text), "")


# -- order_by --------------------------------------------------------------------------------

ORDER_BYS = [
    (["metrics.loss"], [OrderBy("metric", "loss", True)]),
    (["metrics.loss ASC"], [OrderBy("metric", "loss", True)]),
    (["metrics.loss desc"], [OrderBy("metric", "loss", False)]),
    (["metrics.loss   DeSc  "], [OrderBy("metric", "loss", False)]),
    (["metrics.`my loss` DESC"], [OrderBy("metric", "my loss", False)]),
    (['metrics."my loss"'], [OrderBy("metric", "my loss", True)]),
    (["params.lr"], [OrderBy("param", "lr", True)]),
    (["tags.mlflow.runName DESC"], [OrderBy("tag", "mlflow.runName", False)]),
    (["attributes.start_time"], [OrderBy("attribute", "start_time", True)]),
    (["start_time DESC"], [OrderBy("attribute", "start_time", False)]),
    (["created"], [OrderBy("attribute", "start_time", True)]),
    (["attributes.`run name`"], [OrderBy("attribute", "run_name", True)]),
    (["run_uuid"], [OrderBy("attribute", "run_id", True)]),
    (
        ["attr.status", "end_time DESC"],
        [OrderBy("attribute", "status", True), OrderBy("attribute", "end_time", False)],
    ),
    ([], []),
    (None, []),
]


@pytest.mark.parametrize(("clauses", "expected"), ORDER_BYS, ids=[str(c) for c, _ in ORDER_BYS])
def test_parse_order_by(clauses: list[str] | None, expected: list[OrderBy]) -> None:
    assert parse_order_by(clauses) == expected


@pytest.mark.parametrize(
    "clause",
    [
        "",
        "   ",
        "metrics.loss UP",
        "metrics.loss ASC DESC",
        "metrics.loss ASC x",
        "datasets.name",
        "attributes.nope",
        "nope",
        "foo.bar",
        "metrics.",
        "ASC",
        "metrics.loss, params.x",
        42,
        None,
    ],
)
def test_invalid_order_by(clause: object) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_order_by([clause])  # type: ignore[list-item]
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("name", OrderBy("attribute", "name", True)),
        ("name DESC", OrderBy("attribute", "name", False)),
        ("experiment_id", OrderBy("attribute", "experiment_id", True)),
        ("attributes.creation_time DESC", OrderBy("attribute", "creation_time", False)),
        ("last_update_time", OrderBy("attribute", "last_update_time", True)),
    ],
)
def test_parse_experiment_order_by(clause: str, expected: OrderBy) -> None:
    assert parse_order_by([clause], experiments=True) == [expected]


@pytest.mark.parametrize(
    "clause", ["metrics.loss", "tags.t", "start_time", "status", "params.x", "run_name"]
)
def test_invalid_experiment_order_by(clause: str) -> None:
    with pytest.raises(InvalidFilter):
        parse_order_by([clause], experiments=True)


# -- page tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0, 1, 2, 999, 50_000, 2**40])
def test_page_token_round_trip(offset: int) -> None:
    token = encode_page_token(offset)
    assert isinstance(token, str)
    assert token.isascii()
    assert decode_page_token(token) == offset


def test_page_tokens_differ_by_offset() -> None:
    assert len({encode_page_token(i) for i in range(100)}) == 100


@pytest.mark.parametrize("token", [None, ""])
def test_no_page_token_is_the_start(token: str | None) -> None:
    assert decode_page_token(token) == 0


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        "!!!!",
        "e30",  # unpadded
        _b64(b"not json"),
        _b64(b"\xff\xfe"),
        _b64(json.dumps([1]).encode()),
        _b64(json.dumps(3).encode()),
        _b64(json.dumps("x").encode()),
        _b64(json.dumps({}).encode()),
        _b64(json.dumps({"offset": -1}).encode()),
        _b64(json.dumps({"offset": 1.5}).encode()),
        _b64(json.dumps({"offset": "2"}).encode()),
        _b64(json.dumps({"offset": True}).encode()),
        _b64(json.dumps({"offset": None}).encode()),
    ],
    ids=[
        "text",
        "punctuation",
        "unpadded",
        "not-json",
        "not-utf8",
        "list",
        "number",
        "string",
        "no-offset",
        "negative",
        "float",
        "string-offset",
        "bool-offset",
        "null-offset",
    ],
)
def test_invalid_page_token(token: str) -> None:
    with pytest.raises(InvalidParameterValue) as info:
        decode_page_token(token)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "page token" in info.value.message
