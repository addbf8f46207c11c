"""Hot reload: an alias (or ``latest``, or a stage) that moves is followed without losing a
request; a version that fails to load leaves the old one serving and is tagged."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
import pytest

from slipway.exceptions import SlipwayError
from slipway.serving.batching import BatchConfig
from slipway.serving.endpoint import Endpoint, PredictResult
from slipway.serving.loaded import LoadedModel
from slipway.serving.reload import LOAD_ERROR_TAG, ModelSlot, is_movable

from ._models import ServingModels, features


@pytest.fixture
def models(tmp_path_factory: pytest.TempPathFactory) -> ServingModels:
    """A store of its own per test: these tests move aliases."""
    return ServingModels(tmp_path_factory.mktemp("serving-reload"))


def value(result: PredictResult) -> float:
    values = set(np.asarray(result.predictions).tolist())
    assert len(values) == 1
    return float(values.pop())


def endpoint_for(models: ServingModels, uri: str, **kwargs: Any) -> Endpoint:
    kwargs.setdefault("reload_interval_s", 0)  # the tests check when they choose to
    return Endpoint("r", [(uri, 1)], tracking_uri=models.tracking_uri, **kwargs)


@pytest.mark.parametrize(
    ("uri", "movable"),
    [
        ("models:/m@champion", True),
        ("models:/m/latest", True),
        ("models:/m/Production", True),
        ("models:/m/3", False),
        ("runs:/abc/model", False),
        ("/srv/models/m", False),
    ],
)
def test_which_uris_are_watched(uri: str, movable: bool) -> None:
    assert is_movable(uri) is movable


def test_an_alias_move_under_load_loses_no_request(models: ServingModels) -> None:
    # Each request takes 20 ms in the model, so requests are in flight when the switch comes.
    models.register_constant("r", 1.0, sleep_s=0.02, alias="champion")
    models.register_constant("r", 2.0, sleep_s=0.02)
    endpoint = endpoint_for(models, "models:/r@champion")
    frame = features(1)

    async def scenario() -> tuple[list[PredictResult], list[float], LoadedModel]:
        await endpoint.start()
        old = endpoint.current()[0]
        results: list[PredictResult] = []
        switched_at: list[float] = []

        async def client(n: int) -> None:
            for _ in range(n):
                results.append(await endpoint.predict(frame))
                await asyncio.sleep(0)

        async def mover() -> None:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(models.set_alias, "r", "champion", 2)
            assert await endpoint.check_for_updates()
            switched_at.append(len(results))

        await asyncio.gather(*(client(30) for _ in range(20)), mover())
        await endpoint.close()
        return results, [float(n) for n in switched_at], old

    results, switched_at, old = asyncio.run(scenario())
    assert len(results) == 600  # every request answered, none failed
    answers = [(r.model_version, value(r)) for r in results]
    assert set(answers) == {("1", 1.0), ("2", 2.0)}
    assert answers[0] == ("1", 1.0)
    assert answers[-1] == ("2", 2.0)
    # Answers switch once: after the first answer from v2, only stragglers in flight at the
    # moment of the switch (at most one per client) still come from v1.
    first_new = answers.index(("2", 2.0))
    assert answers[first_new:].count(("1", 1.0)) <= 20
    assert 0 < switched_at[0] < 600
    assert old.unloaded
    assert old.in_flight == 0


def test_the_old_model_unloads_only_after_its_requests_are_answered(
    models: ServingModels,
) -> None:
    models.register_constant("r", 1.0, sleep_s=0.4, alias="champion")
    models.register_constant("r", 2.0)
    endpoint = endpoint_for(models, "models:/r@champion")

    async def scenario() -> tuple[PredictResult, PredictResult, tuple[bool, int, bool, bool]]:
        await endpoint.start()
        old = endpoint.current()[0]
        slow = asyncio.create_task(endpoint.predict(features(1)))
        await asyncio.sleep(0.05)
        models.set_alias("r", "champion", 2)
        assert await endpoint.check_for_updates()
        fast = await endpoint.predict(features(1))  # the new model serves at once
        # The old model takes no new request, and waits for the one it is answering.
        busy = (old.closed, old.in_flight, old.unloaded)
        answer = await slow
        for _ in range(100):
            if old.unloaded:
                break
            await asyncio.sleep(0.01)
        await endpoint.close()
        return answer, fast, (*busy, old.unloaded)

    answer, fast, states = asyncio.run(scenario())
    assert (answer.model_version, value(answer)) == ("1", 1.0)
    assert (fast.model_version, value(fast)) == ("2", 2.0)
    assert states == (True, 1, False, True)
    assert answer.model is not None
    assert fast.model is not None
    assert (answer.model.version, fast.model.version) == ("1", "2")


def test_a_broken_version_leaves_the_old_one_serving_and_is_tagged(
    models: ServingModels, caplog: pytest.LogCaptureFixture
) -> None:
    models.register_constant("r", 1.0, alias="champion")
    broken = models.register_broken("r")
    models.register_constant("r", 3.0)
    endpoint = endpoint_for(models, "models:/r@champion")

    async def scenario() -> list[tuple[bool, str | None, float]]:
        await endpoint.start()
        steps = []
        models.set_alias("r", "champion", broken.version)
        for _ in range(2):  # the second check does not try the broken version again
            changed = await endpoint.check_for_updates()
            result = await endpoint.predict(features(1))
            steps.append((changed, result.model_version, value(result)))
        models.set_alias("r", "champion", 3)
        changed = await endpoint.check_for_updates()
        result = await endpoint.predict(features(1))
        steps.append((changed, result.model_version, value(result)))
        await endpoint.close()
        return steps

    with caplog.at_level(logging.ERROR, logger="slipway.serving.reload"):
        steps = asyncio.run(scenario())
    assert steps == [(False, "1", 1.0), (False, "1", 1.0), (True, "3", 3.0)]
    tags = models.registry.get_model_version("r", broken.version).tags
    assert "truncated" in tags[LOAD_ERROR_TAG]
    assert tags[LOAD_ERROR_TAG].startswith("InvalidParameterValue: ")
    assert LOAD_ERROR_TAG not in models.registry.get_model_version("r", 3).tags
    load_errors = [r for r in caplog.records if "Cannot load models:/r@champion" in r.message]
    assert len(load_errors) == 1


def test_a_version_that_fails_at_start_is_tagged(models: ServingModels) -> None:
    broken = models.register_broken("r", alias="champion")
    endpoint = endpoint_for(models, "models:/r@champion")
    with pytest.raises(SlipwayError, match="truncated"):
        asyncio.run(endpoint.start())
    tags = models.registry.get_model_version("r", broken.version).tags
    assert "truncated" in tags[LOAD_ERROR_TAG]


def test_the_watcher_follows_latest_on_its_own(models: ServingModels) -> None:
    models.register_constant("r", 1.0)
    endpoint = endpoint_for(models, "models:/r/latest", reload_interval_s=0.05)

    async def scenario() -> tuple[float, float]:
        await endpoint.start()
        before = value(await endpoint.predict(features(1)))
        await asyncio.to_thread(models.register_constant, "r", 2.0)
        deadline = time.monotonic() + 10
        while endpoint.current()[0].version != "2":
            assert time.monotonic() < deadline, "the watcher did not load version 2"
            await asyncio.sleep(0.02)
        after = value(await endpoint.predict(features(1)))
        await endpoint.close()
        return before, after

    assert asyncio.run(scenario()) == (1.0, 2.0)


def test_a_stage_is_followed(models: ServingModels) -> None:
    models.register_constant("r", 1.0)
    models.register_constant("r", 2.0)
    models.registry.transition_stage("r", 1, "Production")
    endpoint = endpoint_for(models, "models:/r/Production")

    async def scenario() -> list[str | None]:
        await endpoint.start()
        seen = [endpoint.current()[0].version]
        models.registry.transition_stage("r", 2, "Production", archive_existing_versions=True)
        await endpoint.check_for_updates()
        seen.append((await endpoint.predict(features(1))).model_version)
        await endpoint.close()
        return seen

    assert asyncio.run(scenario()) == ["1", "2"]


def test_a_fixed_version_is_never_reloaded(models: ServingModels) -> None:
    models.register_constant("r", 1.0)
    endpoint = endpoint_for(models, "models:/r/1")

    async def scenario() -> tuple[bool, str | None]:
        await endpoint.start()
        models.register_constant("r", 2.0)
        changed = await endpoint.check_for_updates()
        version = endpoint.current()[0].version
        await endpoint.close()
        return changed, version

    assert asyncio.run(scenario()) == (False, "1")


def test_an_alias_that_disappears_keeps_the_model_serving(
    models: ServingModels, caplog: pytest.LogCaptureFixture
) -> None:
    models.register_constant("r", 1.0, alias="champion")
    slot = ModelSlot("r", "models:/r@champion", BatchConfig(), models.tracking_uri)

    async def scenario() -> list[bool]:
        await slot.load()
        models.registry.delete_alias("r", "champion")
        changes = [await slot.check() for _ in range(3)]
        assert value_of(await slot.model.predict(features(1))) == 1.0
        await slot.close()
        return changes

    with caplog.at_level(logging.WARNING, logger="slipway.serving.reload"):
        assert asyncio.run(scenario()) == [False, False, False]
    warnings = [r for r in caplog.records if "Cannot resolve models:/r@champion" in r.message]
    assert len(warnings) == 1  # a lasting problem is logged once, not on every check


def value_of(predictions: Any) -> float:
    return float(np.asarray(predictions)[0])
