"""Loading models for serving (``LoadedModel``) and one-route endpoints: which version a URI
names, signature checks before batching, model errors, unloading after in-flight requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest

from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist, TemporarilyUnavailable
from slipway.flavors.pyfunc import load_model
from slipway.serving.batching import BatchConfig
from slipway.serving.endpoint import Endpoint, PredictResult
from slipway.serving.loaded import LoadedModel, registry_version

from ._models import ServingModels, features

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> ServingModels:
    store = ServingModels(tmp_path_factory.mktemp("serving-endpoint"))
    store.register_constant("const", 1.0, alias="champion")
    store.register_constant("const", 2.0, alias="challenger")
    store.registry.transition_stage("const", 1, "Production")
    store.register_sklearn("clf", alias="prod")
    store.register_constant("slow", 3.0, sleep_s=0.3)
    store.register_constant("faulty", 0.0, fail="the model broke")
    store.register_broken("broken")
    return store


def load(models: ServingModels, uri: str, batch: BatchConfig | None = None) -> LoadedModel:
    return LoadedModel.load("m", uri, batch or BatchConfig(), models.tracking_uri)


# -- which version a URI names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "version", "value"),
    [
        ("models:/const/1", "1", 1.0),
        ("models:/const/2", "2", 2.0),
        ("models:/const@champion", "1", 1.0),
        ("models:/const@challenger", "2", 2.0),
        ("models:/const/latest", "2", 2.0),
        ("models:/const/Production", "1", 1.0),
        ("models:/const/production", "1", 1.0),
    ],
)
def test_a_registry_uri_loads_the_version_it_names(
    models: ServingModels, uri: str, version: str, value: float
) -> None:
    model = load(models, uri)
    assert (model.version, model.registered_name, model.uri) == (version, "const", uri)
    answer = run(model.predict(features(3)))
    np.testing.assert_array_equal(answer, [value] * 3)
    run(model.close())
    assert model.closed


def test_the_tracking_uri_given_wins_over_the_one_in_effect(
    models: ServingModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the store in effect is an empty ./.slipway here
    assert registry_version("models:/const@champion", models.tracking_uri) is not None
    with pytest.raises(ResourceDoesNotExist):
        registry_version("models:/const@champion", str(tmp_path / "other"))


def test_a_local_path_and_a_runs_uri_load_outside_the_registry(
    models: ServingModels, tmp_path: Path
) -> None:
    path = models.save_constant(tmp_path / "local", 7.0)
    local = load(models, str(path))
    assert (local.version, local.registered_name) == (None, None)
    assert local.version_label == ""
    np.testing.assert_array_equal(run(local.predict(features(2))), [7.0, 7.0])

    run_id = models.registry.get_model_version("const", 2).run_id
    by_run = load(models, f"runs:/{run_id}/model")
    assert by_run.version is None
    np.testing.assert_array_equal(run(by_run.predict(features(1))), [2.0])


def test_the_sklearn_model_answers_as_scikit_learn_does(models: ServingModels) -> None:
    model = load(models, "models:/clf@prod")
    frame = features(20, seed=3)
    expected = load_model(models.registry.get_model_version("clf", 1).source).get_raw_model()
    np.testing.assert_array_equal(run(model.predict(frame)), expected.predict(frame))
    assert model.signature is not None
    assert model.signature.inputs is not None
    assert model.signature.inputs.input_names() == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("uri", "error", "match"),
    [
        ("models:/nope/1", ResourceDoesNotExist, "nope"),
        ("models:/const@nobody", InvalidParameterValue, "alias nobody not found"),  # as MLflow
        ("models:/const/99", ResourceDoesNotExist, "99"),
        ("models:/", InvalidParameterValue, "Invalid models URI"),
        ("ftp://host/model", InvalidParameterValue, "Unsupported model URI"),
        ("models:/broken/1", InvalidParameterValue, "truncated"),
    ],
)
def test_a_model_that_does_not_load_is_a_clear_error(
    models: ServingModels, uri: str, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        load(models, uri)


def test_a_missing_local_path_is_not_found(models: ServingModels, tmp_path: Path) -> None:
    with pytest.raises(ResourceDoesNotExist, match="does not exist"):
        load(models, str(tmp_path / "missing"))


# -- requests ---------------------------------------------------------------------------------


def test_a_request_that_misfits_the_signature_fails_before_the_model_runs(
    models: ServingModels,
) -> None:
    # The faulty model raises whenever it runs: a signature error proves it never ran.
    model = load(models, "models:/faulty/1")
    with pytest.raises(InvalidParameterValue, match="'c'"):
        run(model.predict(features(2).drop(columns=["c"])))
    with pytest.raises(InvalidParameterValue, match="offset"):
        run(model.predict(features(2), {"offset": "far"}))
    with pytest.raises(RuntimeError, match="the model broke"):
        run(model.predict(features(2)))
    assert model.in_flight == 0


def test_validate_converts_as_the_signature_says(models: ServingModels) -> None:
    model = load(models, "models:/const/1")
    ints = pd.DataFrame({"a": [1], "b": [2], "c": [3]})
    data, params = model.validate(ints, None)
    assert list(data.dtypes) == [np.float64] * 3
    assert params == {"offset": 0.0}
    _, params = model.validate(ints, {"offset": 2})
    assert params == {"offset": 2.0}
    np.testing.assert_array_equal(run(model.predict(ints, {"offset": 0.5})), [1.5])


def test_batched_requests_each_get_their_own_answer(models: ServingModels) -> None:
    model = load(models, "models:/clf@prod", BatchConfig(max_batch_size=32, max_delay_ms=5))
    frames = [features(1, seed=seed) for seed in range(60)]
    bad = frames[0].drop(columns=["b"])

    async def scenario() -> list[Any]:
        answers = await asyncio.gather(
            *(model.predict(frame) for frame in frames[:30]),
            model.predict(bad),
            *(model.predict(frame) for frame in frames[30:]),
            return_exceptions=True,
        )
        await model.close()
        return answers

    answers = run(scenario())
    assert isinstance(answers.pop(30), InvalidParameterValue)  # refused alone, before batching
    sk_model = model.model.get_raw_model()
    expected = sk_model.predict(pd.concat(frames, ignore_index=True))
    np.testing.assert_array_equal(np.concatenate(answers), expected)


def test_checked_data_is_predicted_without_a_second_check(models: ServingModels) -> None:
    model = load(models, "models:/const/1")
    data, params = model.validate(features(2), {"offset": 1.0})
    np.testing.assert_array_equal(model.model.predict_unchecked(data, params), [2.0, 2.0])
    # Unchecked really means unchecked: the model runs on data the signature would refuse.
    np.testing.assert_array_equal(model.model.predict_unchecked(pd.DataFrame({"z": [0]})), [1.0])


def test_closing_waits_for_requests_in_flight(models: ServingModels) -> None:
    async def scenario() -> tuple[Any, float, float]:
        model = LoadedModel.load("slow", "models:/slow/1", BatchConfig(), models.tracking_uri)
        started = time.perf_counter()
        request = asyncio.create_task(model.predict(features(1)))
        await asyncio.sleep(0.05)
        assert model.in_flight == 1
        await model.close()
        closed_after = time.perf_counter() - started
        answer = await request
        with pytest.raises(TemporarilyUnavailable, match="unloaded"):
            await model.predict(features(1))
        return answer, closed_after, time.perf_counter() - started

    answer, closed_after, _ = run(scenario())
    np.testing.assert_array_equal(answer, [3.0])
    assert closed_after >= 0.25  # close returned only after the 0.3 s request was answered


def test_closing_gives_up_waiting_after_the_drain_timeout(models: ServingModels) -> None:
    async def scenario() -> float:
        model = LoadedModel.load("slow", "models:/slow/1", BatchConfig(), models.tracking_uri)
        request = asyncio.create_task(model.predict(features(1)))
        await asyncio.sleep(0.02)
        started = time.perf_counter()
        await model.close(drain_timeout_s=0.05)
        waited = time.perf_counter() - started
        await request
        return waited

    assert run(scenario()) < 0.25


# -- one-route endpoints ------------------------------------------------------------------------


def test_an_endpoint_answers_with_the_version_that_served(models: ServingModels) -> None:
    async def scenario() -> tuple[PredictResult, list[LoadedModel], bool, bool]:
        endpoint = Endpoint(
            "const", [("models:/const@champion", 1)], tracking_uri=models.tracking_uri
        )
        assert not endpoint.ready
        with pytest.raises(TemporarilyUnavailable, match="not serving"):
            await endpoint.predict(features(1))
        await endpoint.start()
        ready = endpoint.ready
        result = await endpoint.predict(features(2), {"offset": 1.0})
        current = endpoint.current()
        await endpoint.close()
        with pytest.raises(TemporarilyUnavailable):
            await endpoint.predict(features(1))
        return result, current, ready, endpoint.ready

    result, current, ready, ready_after_close = run(scenario())
    assert (ready, ready_after_close) == (True, False)
    assert (result.model_name, result.model_version, result.model_uri) == (
        "const",
        "1",
        "models:/const@champion",
    )
    np.testing.assert_array_equal(result.predictions, [2.0, 2.0])
    assert [(m.version, m.registered_name) for m in current] == [("1", "const")]
    assert current[0].unloaded


def test_a_model_error_fails_that_request_only(models: ServingModels) -> None:
    async def scenario() -> list[Any]:
        endpoint = Endpoint("f", [("models:/faulty/1", 1)], tracking_uri=models.tracking_uri)
        await endpoint.start()
        outcomes = await asyncio.gather(
            *(endpoint.predict(features(1)) for _ in range(5)), return_exceptions=True
        )
        bad = await asyncio.gather(
            endpoint.predict(pd.DataFrame({"a": [1.0]})), return_exceptions=True
        )
        await endpoint.close()
        return [*outcomes, *bad]

    outcomes = run(scenario())
    assert [type(o) for o in outcomes] == [RuntimeError] * 5 + [InvalidParameterValue]


def test_an_endpoint_that_cannot_load_a_model_unloads_the_others(models: ServingModels) -> None:
    async def scenario() -> Endpoint:
        endpoint = Endpoint(
            "mixed",
            [("models:/const/1", 1), ("models:/nope/1", 1)],
            tracking_uri=models.tracking_uri,
        )
        with pytest.raises(ResourceDoesNotExist, match="nope"):
            await endpoint.start()
        return endpoint

    endpoint = run(scenario())
    assert not endpoint.ready
    assert endpoint.current() == []


def test_an_endpoint_refuses_bad_routes() -> None:
    with pytest.raises(InvalidParameterValue, match="at least one"):
        Endpoint("e", [])
    with pytest.raises(InvalidParameterValue, match="positive"):
        Endpoint("e", [("models:/a/1", 0)])
    with pytest.raises(InvalidParameterValue, match="positive"):
        Endpoint("e", [("models:/a/1", float("nan"))])
    with pytest.raises(InvalidParameterValue, match="twice"):
        Endpoint("e", [("models:/a/1", 1), ("models:/a/1", 2)])
