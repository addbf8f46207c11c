"""The cache key: what changes it (code, helpers, parameters, input data, the environment,
cache_version) and what does not (where data is stored, retries, timeouts, resources)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from slipway.exceptions import InvalidParameterValue
from slipway.pipelines import PipelineStatus, component
from slipway.pipelines.cache import cache_key, canonical_json, code_digest
from slipway.pipelines.component import Component, make_options

MODULE = """
from slipway.pipelines import component, Input, Output, Dataset, Model

SCALE = {scale}


def helper(x):
    return x * {factor}


def unused():
    return {unused}


class Scaler:
    def apply(self, x):
        return x + {offset}


def deep(x):
    return helper(x) + 1


@component(retries={retries}, timeout={timeout})
def train(data: Input[Dataset], model: Output[Model], rate: float = 0.1, n: int = 1) -> float:
    fn = lambda v: deep(v)  # noqa: E731 - a helper reached only from nested code
    return fn(rate) * SCALE + Scaler().apply(n)
"""

DEFAULTS = {"scale": 2, "factor": 3, "unused": 0, "offset": 1, "retries": 0, "timeout": None}


def load(tmp_path: Path, **changes: Any) -> ModuleType:
    """The module above (with ``changes``) from a file, under a made-up module name."""
    values = {**DEFAULTS, **changes}
    name = f"cache_mod_{uuid.uuid4().hex[:10]}"
    path = tmp_path / f"{name}.py"
    path.write_text(MODULE.format(**values))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_of(tmp_path: Path, **changes: Any) -> Component:
    comp = load(tmp_path, **changes).train
    assert isinstance(comp, Component)
    return comp


REF = {"uri": "/data/a.csv", "digest": "sha256:" + "a" * 64, "type": "Dataset", "metadata": {}}


def key_of(comp: Component, **overrides: Any) -> str:
    options = overrides.pop("options", comp.spec.options)
    params = overrides.pop("params", {"rate": 0.5, "n": 2})
    artifacts = overrides.pop("artifacts", {"data": REF})
    assert not overrides
    return cache_key(comp, options, params, artifacts)


# -- code_digest ----------------------------------------------------------------------------


def test_code_digest_is_the_same_for_the_same_code_in_two_files(tmp_path: Path) -> None:
    assert code_digest(train_of(tmp_path)) == code_digest(train_of(tmp_path))


@pytest.mark.parametrize(
    "change",
    [
        {"factor": 4},  # a helper two calls away, reached from a lambda
        {"offset": 2},  # a method of a class of the module
        {"scale": 5},  # a constant the function reads
    ],
    ids=["helper", "class", "constant"],
)
def test_code_digest_follows_the_helpers_of_the_module(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    assert code_digest(train_of(tmp_path)) != code_digest(train_of(tmp_path, **change))


@pytest.mark.parametrize(
    "change",
    [{"unused": 1}, {"retries": 3}, {"timeout": 30}],
    ids=["unreferenced-function", "retries-decorator", "timeout-decorator"],
)
def test_code_digest_ignores_what_the_function_does_not_use(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    assert code_digest(train_of(tmp_path)) == code_digest(train_of(tmp_path, **change))


def test_code_digest_leaves_imported_functions_out(tmp_path: Path) -> None:
    """A function imported from another module belongs to the environment: editing it in
    place (here: replacing it in its module) does not change the component's digest."""
    lib_name = f"cache_lib_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{lib_name}.py").write_text("def shared(x):\n    return x + 1\n")
    (tmp_path / "user.py").write_text(
        f"from {lib_name} import shared\n"
        "from slipway.pipelines import component\n\n"
        "@component\ndef step(x: int) -> int:\n    return shared(x)\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        spec = importlib.util.spec_from_file_location(f"user_{lib_name}", tmp_path / "user.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        before = code_digest(module.step)
        module.shared = lambda x: x + 2  # same name, another object from elsewhere
        assert code_digest(module.step) == before
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(lib_name, None)


def test_code_digest_is_stable_across_processes(tmp_path: Path) -> None:
    here = code_digest(train_of(tmp_path))
    path = next(tmp_path.glob("cache_mod_*.py"))
    script = textwrap.dedent(
        f"""
        import importlib.util
        from slipway.pipelines.cache import code_digest
        spec = importlib.util.spec_from_file_location({path.stem!r}, {str(path)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(code_digest(module.train))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == here


def test_code_digest_without_source_uses_the_code_object() -> None:
    """Functions typed at a prompt have no source file: bytecode and constants stand in."""

    def made(body: str) -> Component:
        namespace: dict[str, Any] = {"component": component}
        exec(f"@component\ndef nosrc(x: int) -> int:\n    return {body}\n", namespace)
        comp = namespace["nosrc"]
        assert isinstance(comp, Component)
        assert comp.source == ""
        return comp

    assert code_digest(made("x + 1")) == code_digest(made("x + 1"))
    assert code_digest(made("x + 1")) != code_digest(made("x + 2"))
    assert code_digest(made("x + 1")) != code_digest(made("x - 1"))


def test_code_digest_refuses_what_is_not_a_function() -> None:
    with pytest.raises(InvalidParameterValue, match="component or function"):
        code_digest(42)  # type: ignore[arg-type]


# -- cache_key ------------------------------------------------------------------------------


def test_cache_key_is_a_sha256_hex_and_deterministic(tmp_path: Path) -> None:
    comp = train_of(tmp_path)
    key = key_of(comp)
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert key_of(comp) == key
    assert key_of(train_of(tmp_path)) == key  # the same code loaded again


@pytest.mark.parametrize(
    ("what", "overrides"),
    [
        ("parameter", {"params": {"rate": 0.25, "n": 2}}),
        ("parameter type", {"params": {"rate": 0.5, "n": 2.0}}),
        ("extra parameter", {"params": {"rate": 0.5, "n": 2, "other": None}}),
        ("input digest", {"artifacts": {"data": {**REF, "digest": "sha256:" + "b" * 64}}}),
        ("cache_version", {"options": make_options(cache_version="2")}),
        ("packages", {"options": make_options(packages=["numpy==2.0"])}),
        ("image", {"options": make_options(image="python:3.12")}),
        ("env", {"options": make_options(env={"MODE": "fast"})}),
    ],
)
def test_cache_key_changes_with(tmp_path: Path, what: str, overrides: dict[str, Any]) -> None:
    comp = train_of(tmp_path)
    assert key_of(comp, **overrides) != key_of(comp), what


@pytest.mark.parametrize(
    ("what", "overrides"),
    [
        ("uri", {"artifacts": {"data": {**REF, "uri": "s3://elsewhere/a.csv"}}}),
        ("metadata", {"artifacts": {"data": {**REF, "metadata": {"rows": 3}}}}),
        ("producer", {"artifacts": {"data": {**REF, "producer": "etl[2]"}}}),
        ("timeout", {"options": make_options(timeout="10m")}),
        ("retries", {"options": make_options(retries=5, backoff="3s")}),
        ("resources", {"options": make_options(cpu=4, memory="8Gi", gpu=1)}),
        ("cache ttl", {"options": make_options(cache_ttl="1h")}),
        ("int for a float", {"params": {"rate": 1, "n": 2}}),
    ],
)
def test_cache_key_does_not_change_with(
    tmp_path: Path, what: str, overrides: dict[str, Any]
) -> None:
    comp = train_of(tmp_path)
    base = {"params": {"rate": 1.0, "n": 2}} if what == "int for a float" else {}
    assert key_of(comp, **overrides) == key_of(comp, **base), what


def test_cache_key_changes_with_helper_source(tmp_path: Path) -> None:
    assert key_of(train_of(tmp_path)) != key_of(train_of(tmp_path, factor=7))


def test_cache_key_of_a_collected_input_keeps_the_order() -> None:
    @component
    def merge(models: list[int]) -> int:
        return len(models)

    a = {"uri": "/a", "digest": "sha256:" + "1" * 64}
    b = {"uri": "/b", "digest": "sha256:" + "2" * 64}
    options = merge.spec.options
    first = cache_key(merge, options, {}, {"models": [a, b]})
    assert first == cache_key(merge, options, {}, {"models": [a, b]})
    assert first != cache_key(merge, options, {}, {"models": [b, a]})
    assert first != cache_key(merge, options, {}, {"models": [a]})


def test_cache_key_takes_a_pipeline_status() -> None:
    @component
    def notify(status: PipelineStatus) -> str:
        return status.state

    options = notify.spec.options
    ok = cache_key(notify, options, {"status": PipelineStatus("SUCCEEDED", "r1")}, {})
    failed = cache_key(notify, options, {"status": PipelineStatus("FAILED", "r1", ("a",))}, {})
    assert ok != failed


def test_cache_key_refuses_values_that_are_not_json(tmp_path: Path) -> None:
    comp = train_of(tmp_path)
    with pytest.raises(InvalidParameterValue, match="parameter rate"):
        key_of(comp, params={"rate": object(), "n": 2})
    with pytest.raises(InvalidParameterValue, match="keys must be strings"):
        key_of(comp, params={"rate": 0.5, "n": {1: "a"}})
    with pytest.raises(InvalidParameterValue, match="'data' has no digest"):
        key_of(comp, artifacts={"data": {"uri": "/x"}})


def test_canonical_json_sorts_keys_and_writes_floats_by_repr() -> None:
    assert canonical_json({"b": 0.1, "a": [1, 2.5e-10, True, None]}) == (
        '{"a":[1,2.5e-10,true,null],"b":0.1}'
    )
    assert canonical_json({"x": float("nan"), "y": ("t",)}) == '{"x":NaN,"y":["t"]}'
    assert canonical_json({"é": "ü"}) == '{"é":"ü"}'
