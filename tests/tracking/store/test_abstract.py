"""The tracking store interface: abstract methods are enforced, conveniences use log_batch."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from slipway.entities import Metric, Param, RunTag
from slipway.tracking.store import base
from slipway.tracking.store.base import AbstractTrackingStore
from slipway.tracking.store.sql import SqlTrackingStore

REQUIRED = {
    "create_experiment",
    "get_experiment",
    "get_experiment_by_name",
    "rename_experiment",
    "delete_experiment",
    "restore_experiment",
    "set_experiment_tag",
    "delete_experiment_tag",
    "search_experiments",
    "create_run",
    "get_run",
    "update_run_info",
    "delete_run",
    "restore_run",
    "log_batch",
    "delete_tag",
    "log_inputs",
    "get_metric_history",
    "get_metric_history_bulk_interval",
    "search_runs",
}


def _stub(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((name, args, kwargs))

    method.__name__ = name
    return method


ABSTRACT = sorted(AbstractTrackingStore.__abstractmethods__)


def _complete(skip: str | None = None) -> type[AbstractTrackingStore]:
    """A subclass implementing every abstract method except ``skip``."""
    namespace = {name: _stub(name) for name in ABSTRACT if name != skip}
    namespace["__init__"] = lambda self: setattr(self, "calls", [])
    return type("Store", (AbstractTrackingStore,), namespace)


def test_every_store_operation_is_abstract() -> None:
    assert set(ABSTRACT) >= REQUIRED
    conveniences = {"log_metric", "log_param", "set_tag", "close"}
    assert not conveniences & set(ABSTRACT)


def test_base_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError, match="abstract"):
        AbstractTrackingStore()  # type: ignore[abstract]


@pytest.mark.parametrize("missing", ABSTRACT)
def test_incomplete_subclass_cannot_be_instantiated(missing: str) -> None:
    incomplete = _complete(skip=missing)
    with pytest.raises(TypeError) as info:
        incomplete()
    assert missing in str(info.value)


def test_complete_subclass_can_be_instantiated() -> None:
    store = _complete()()
    assert isinstance(store, AbstractTrackingStore)
    store.close()  # the default close holds nothing and does nothing
    assert store.calls == []  # type: ignore[attr-defined]


def test_single_logging_calls_go_through_log_batch() -> None:
    store = _complete()()
    metric, param, tag = Metric("m", 1.0, 2, 3), Param("p", "v"), RunTag("t", "w")
    store.log_metric("run", metric)
    store.log_param("run", param)
    store.set_tag("run", tag)
    assert store.calls == [  # type: ignore[attr-defined]
        ("log_batch", ("run",), {"metrics": [metric]}),
        ("log_batch", ("run",), {"params": [param]}),
        ("log_batch", ("run",), {"tags": [tag]}),
    ]


def test_sql_store_implements_the_interface() -> None:
    assert issubclass(SqlTrackingStore, AbstractTrackingStore)
    assert not getattr(SqlTrackingStore, "__abstractmethods__", frozenset())


def test_interface_imports_no_database_or_http_library() -> None:
    tree = ast.parse(Path(base.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert "slipway.entities" in imported
    roots = {name.split(".")[0] for name in imported}
    assert roots <= {"__future__", "abc", "collections", "typing", "slipway"}, roots
    assert {n for n in imported if n.startswith("slipway.")} <= {
        "slipway.entities",
        "slipway.exceptions",
    }
