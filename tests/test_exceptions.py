"""The exception tree: each class, its error code, its HTTP status and its wire shape."""

from __future__ import annotations

import pytest

from slipway import exceptions as ex
from slipway.exceptions import ERROR_CODE_TO_HTTP_STATUS, SlipwayError

# (class, error code, HTTP status) for every class of the tree.
TREE = [
    (ex.SlipwayError, "INTERNAL_ERROR", 500),
    (ex.InvalidParameterValue, "INVALID_PARAMETER_VALUE", 400),
    (ex.InvalidFilter, "INVALID_PARAMETER_VALUE", 400),
    (ex.BadRequest, "BAD_REQUEST", 400),
    (ex.ResourceAlreadyExists, "RESOURCE_ALREADY_EXISTS", 400),
    (ex.ResourceDoesNotExist, "RESOURCE_DOES_NOT_EXIST", 404),
    (ex.ExperimentNotFound, "RESOURCE_DOES_NOT_EXIST", 404),
    (ex.RunNotFound, "RESOURCE_DOES_NOT_EXIST", 404),
    (ex.PermissionDenied, "PERMISSION_DENIED", 403),
    (ex.ResourceConflict, "RESOURCE_CONFLICT", 409),
    (ex.InvalidState, "INVALID_STATE", 500),
    (ex.TemporarilyUnavailable, "TEMPORARILY_UNAVAILABLE", 503),
    (ex.NotImplementedFeature, "NOT_IMPLEMENTED", 501),
]


@pytest.mark.parametrize(("klass", "code", "status"), TREE, ids=[t[0].__name__ for t in TREE])
def test_class_has_code_and_http_status(klass: type[SlipwayError], code: str, status: int) -> None:
    err = klass("something went wrong")
    assert isinstance(err, SlipwayError)
    assert isinstance(err, Exception)
    assert err.error_code == code
    assert err.http_status == status
    assert err.message == "something went wrong"
    assert str(err) == f"{code}: something went wrong"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("INVALID_PARAMETER_VALUE", 400),
        ("BAD_REQUEST", 400),
        ("RESOURCE_ALREADY_EXISTS", 400),  # MLflow answers 400 here, not 409
        ("RESOURCE_DOES_NOT_EXIST", 404),
        ("NOT_FOUND", 404),
        ("ENDPOINT_NOT_FOUND", 404),
        ("PERMISSION_DENIED", 403),
        ("UNAUTHENTICATED", 401),
        ("CUSTOMER_UNAUTHORIZED", 401),
        ("RESOURCE_CONFLICT", 409),
        ("ABORTED", 409),
        ("ALREADY_EXISTS", 409),
        ("REQUEST_LIMIT_EXCEEDED", 429),
        ("RESOURCE_EXHAUSTED", 429),
        ("CANCELLED", 499),
        ("INVALID_STATE", 500),
        ("INTERNAL_ERROR", 500),
        ("DATA_LOSS", 500),
        ("NOT_IMPLEMENTED", 501),
        ("TEMPORARILY_UNAVAILABLE", 503),
        ("DEADLINE_EXCEEDED", 504),
    ],
)
def test_code_to_http_status_table(code: str, status: int) -> None:
    assert ERROR_CODE_TO_HTTP_STATUS[code] == status
    assert SlipwayError("x", error_code=code).http_status == status


def test_unknown_code_maps_to_500() -> None:
    err = SlipwayError("odd", error_code="SOMETHING_NEW")
    assert err.error_code == "SOMETHING_NEW"
    assert err.http_status == 500


def test_explicit_code_overrides_class_default_on_the_instance_only() -> None:
    err = ex.InvalidParameterValue("nope", error_code="BAD_REQUEST")
    assert err.error_code == "BAD_REQUEST"
    assert err.http_status == 400
    assert ex.InvalidParameterValue("again").error_code == "INVALID_PARAMETER_VALUE"


def test_to_dict_is_the_mlflow_error_body() -> None:
    err = ex.ResourceDoesNotExist("Run 'abc' not found")
    assert err.to_dict() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": "Run 'abc' not found",
    }


def test_to_dict_carries_details() -> None:
    err = ex.InvalidParameterValue("bad key", field="key", limit=250)
    assert err.details == {"field": "key", "limit": 250}
    assert err.to_dict() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "bad key",
        "field": "key",
        "limit": 250,
    }


def test_errors_can_be_raised_and_caught_by_base_class() -> None:
    with pytest.raises(ex.ResourceDoesNotExist) as info:
        raise ex.RunNotFound("Run with id=x not found")
    assert info.value.http_status == 404
    with pytest.raises(SlipwayError, match="OR is not supported"):
        raise ex.InvalidFilter("OR is not supported")


@pytest.mark.parametrize(
    ("code", "klass"),
    [
        ("INVALID_PARAMETER_VALUE", ex.InvalidParameterValue),
        ("BAD_REQUEST", ex.BadRequest),
        ("RESOURCE_ALREADY_EXISTS", ex.ResourceAlreadyExists),
        ("RESOURCE_DOES_NOT_EXIST", ex.ResourceDoesNotExist),
        ("PERMISSION_DENIED", ex.PermissionDenied),
        ("RESOURCE_CONFLICT", ex.ResourceConflict),
        ("INVALID_STATE", ex.InvalidState),
        ("TEMPORARILY_UNAVAILABLE", ex.TemporarilyUnavailable),
        ("NOT_IMPLEMENTED", ex.NotImplementedFeature),
    ],
)
def test_from_code_picks_the_class_that_owns_the_code(code: str, klass: type[SlipwayError]) -> None:
    err = SlipwayError.from_code(code, "message text", extra="yes")
    assert type(err) is klass  # the base class of the code, not a specialisation
    assert err.error_code == code
    assert err.message == "message text"
    assert err.details == {"extra": "yes"}
    assert err.to_dict()["extra"] == "yes"


@pytest.mark.parametrize("code", ["INTERNAL_ERROR", "UNAUTHENTICATED", "DEADLINE_EXCEEDED", "X"])
def test_from_code_falls_back_to_plain_slipway_error(code: str) -> None:
    err = SlipwayError.from_code(code, "message text")
    assert type(err) is SlipwayError
    assert err.error_code == code
    assert err.http_status == ERROR_CODE_TO_HTTP_STATUS.get(code, 500)


def test_from_code_round_trips_to_dict() -> None:
    original = ex.PermissionDenied("no access to experiment 3")
    body = original.to_dict()
    back = SlipwayError.from_code(body.pop("error_code"), body.pop("message"), **body)
    assert type(back) is ex.PermissionDenied
    assert back.to_dict() == original.to_dict()
    assert back.http_status == 403


def test_every_exported_error_is_in_the_tree() -> None:
    exported = {
        getattr(ex, name)
        for name in ex.__all__
        if isinstance(getattr(ex, name), type) and issubclass(getattr(ex, name), BaseException)
    }
    assert exported == {t[0] for t in TREE}
