"""The registry's search grammar, parsed without a database."""

from __future__ import annotations

import pytest

from slipway.exceptions import InvalidFilter
from slipway.registry.search import (
    asks_for_prompts,
    parse_model_filter,
    parse_model_order_by,
    parse_version_filter,
    parse_version_order_by,
)
from slipway.tracking.search import Comparison, OrderBy


def test_model_filters_parse() -> None:
    assert parse_model_filter(None) == []
    assert parse_model_filter("  ") == []
    assert parse_model_filter(
        "name LIKE 'a%' and tags.team = \"ml\" AND tags.`model type` != 'x''y'"
    ) == [
        Comparison("attribute", "name", "LIKE", "a%"),
        Comparison("tag", "team", "=", "ml"),
        Comparison("tag", "model type", "!=", "x'y"),
    ]
    assert parse_model_filter("attributes.name ILIKE '%Iris%'") == [
        Comparison("attribute", "name", "ILIKE", "%Iris%")
    ]
    assert parse_model_filter("tags.mlflow.prompt.is_prompt = 'true'") == [
        Comparison("tag", "mlflow.prompt.is_prompt", "=", "true")
    ]


def test_version_filters_parse() -> None:
    assert parse_version_filter(
        "name = 'iris' AND version_number >= 3 AND run_id IN ('a', 'b') "
        "AND source_path LIKE 's3://%'"
    ) == [
        Comparison("attribute", "name", "=", "iris"),
        Comparison("attribute", "version_number", ">=", 3.0),
        Comparison("attribute", "run_id", "IN", ("a", "b")),
        Comparison("attribute", "source_path", "LIKE", "s3://%"),
    ]


@pytest.mark.parametrize(
    ("filter_string", "message"),
    [
        (
            "name = 'a' OR name = 'b'",
            "OR is not supported; combine conditions with AND at position 11",
        ),
        ("name == ", "expected a value at the end"),
        ("name = 'a' name = 'b'", "expected AND, got 'name' at position 11"),
        ("run_id = 'a'", "invalid search key 'run_id'; use name or tags.<key> at position 0"),
        ("params.x = 'a'", "invalid entity type 'params'"),
        ("tags.x > 'a'", "operator '>' is not allowed for tag 'x'"),
        ("name = 3", "expected a quoted string value for 'name', got '3' at position 7"),
        ("tags.x = 3", "expected a quoted string value for tag 'x', got '3'"),
        ("name @ 'a'", "unexpected character '@' at position 5"),
        ("name IN 'a'", "IN expects a parenthesised list, got \"'a'\""),
    ],
)
def test_model_filter_errors_name_the_bad_token(filter_string: str, message: str) -> None:
    with pytest.raises(InvalidFilter, match=message.replace("(", r"\(").replace("?", r"\?")):
        parse_model_filter(filter_string)


@pytest.mark.parametrize(
    ("filter_string", "message"),
    [
        ("version_number = 'one'", "expected an integer value for 'version_number', got \"'one'\""),
        ("version_number > 1.5", "expected an integer value for 'version_number', got '1.5'"),
        ("version_number LIKE '1'", "operator 'LIKE' is not allowed"),
        ("source_path IN ('a')", "operator 'IN' is not allowed for attribute 'source_path'"),
        ("current_stage = 'Production'", "invalid search key 'current_stage'"),
    ],
)
def test_version_filter_errors(filter_string: str, message: str) -> None:
    with pytest.raises(InvalidFilter, match=message):
        parse_version_filter(filter_string)


def test_order_by() -> None:
    assert parse_model_order_by(None) == []
    assert parse_model_order_by(["name DESC", "timestamp", "creation_timestamp asc"]) == [
        OrderBy("attribute", "name", False),
        OrderBy("attribute", "last_updated_timestamp", True),
        OrderBy("attribute", "creation_timestamp", True),
    ]
    assert parse_version_order_by(["version_number DESC"]) == [
        OrderBy("attribute", "version_number", False)
    ]
    for bad, message in [
        (["version_number"], "invalid order_by key 'version_number'"),
        (["name DESC extra"], "unexpected 'extra'"),
        (["name sideways"], "expected ASC or DESC, got 'sideways'"),
        (["timestamp", "last_updated_timestamp DESC"], "more than once"),
        ([""], "Invalid order_by clause"),
        (["tags.x"], "invalid order_by key"),
    ]:
        with pytest.raises(InvalidFilter, match=message):
            parse_model_order_by(bad)


def test_asks_for_prompts() -> None:
    assert asks_for_prompts(parse_model_filter("tags.`mlflow.prompt.is_prompt` = 'TRUE'"))
    assert asks_for_prompts(parse_model_filter("tags.`mlflow.prompt.is_prompt` != 'false'"))
    assert not asks_for_prompts(parse_model_filter("tags.`mlflow.prompt.is_prompt` = 'false'"))
    assert not asks_for_prompts(parse_model_filter("name = 'x'"))
