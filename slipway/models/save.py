"""The work every flavor shares: write a model directory, log it to a run, register it.

A flavor describes itself with a :class:`FlavorSpec` and writes only its own files; see the
contract in :mod:`slipway.flavors`. A flavor's ``save_model`` is then::

    def save_model(sk_model, path, *, serialization_format="cloudpickle",
                   **options: Unpack[SaveOptions]) -> Model:
        spec = FlavorSpec(
            name="sklearn",
            conf={"pickled_model": "model.pkl", "sklearn_version": sklearn.__version__, ...},
            requirements=("scikit-learn", "cloudpickle"),
            loader_module="mlflow.sklearn",
            pyfunc_conf={"model_path": "model.pkl", "predict_fn": "predict"},
        )
        return save_model_dir(path, spec, write=lambda d: _pickle(sk_model, d),
                              predict=sk_model.predict, **options)

and its ``log_model`` is::

    def log_model(sk_model, artifact_path, *, registered_model_name=None,
                  **options: Unpack[SaveOptions]) -> ModelInfo:
        return log_model_dir(
            artifact_path,
            lambda path, mlmodel: save_model(sk_model, path, **with_mlmodel(options, mlmodel)),
            registered_model_name=registered_model_name,
        )
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

from slipway.exceptions import InvalidParameterValue, ResourceAlreadyExists
from slipway.models.environment import (
    Requirements,
    copy_code_paths,
    python_version,
    resolve_requirements,
    write_environment,
)
from slipway.models.info import ModelInfo
from slipway.models.mlmodel import PYFUNC_FLAVOR, Model

if TYPE_CHECKING:
    from slipway.models.signature import ModelSignature

_log = logging.getLogger(__name__)

LOGGED_MODELS_TAG = "mlflow.log-model.history"
"""The run tag that lists the models logged to a run (MLflow's UI reads it)."""


class SaveOptions(TypedDict, total=False):
    """The keyword arguments every flavor's ``save_model`` and ``log_model`` accept.

    Attributes:
        code_paths: local files or folders the model's code imports; copied into ``code/``
            and put on ``sys.path`` before the model loads.
        signature: the model's input/output/params schema; inferred from ``input_example``
            when omitted, and left out entirely when ``False``.
        input_example: a few rows of valid input, saved with the model.
        pip_requirements: the model's requirements, replacing the flavor's defaults (a list,
            or the path of a requirements file).
        extra_pip_requirements: requirements added to the flavor's defaults.
        metadata: free-form metadata stored in ``MLmodel``.
        mlmodel: the :class:`Model` to fill in; ``log_model`` passes one that carries the run
            id and artifact path. A new one when omitted.
    """

    code_paths: Sequence[str | os.PathLike[str]] | None
    signature: ModelSignature | Literal[False] | None
    input_example: Any
    pip_requirements: Requirements | None
    extra_pip_requirements: Requirements | None
    metadata: dict[str, Any] | None
    mlmodel: Model | None


@dataclass(frozen=True)
class FlavorSpec:
    """How one flavor appears in ``MLmodel``.

    Attributes:
        name: the flavor's key under ``flavors`` (``"sklearn"``).
        conf: that flavor's entries (file names, library version, ...); ``code`` is added.
        requirements: the distributions the model needs to load (``"scikit-learn"``), pinned
            to the installed versions in ``requirements.txt``.
        loader_module: the ``python_function`` loader (MLflow's module name, such as
            ``"mlflow.sklearn"``); None when the model has no pyfunc interface.
        pyfunc_conf: extra ``python_function`` entries (``model_path``, ``predict_fn``, ...).
        primary: False for the pyfunc flavor itself, whose entries all live under
            ``python_function`` (there is no second flavor to write).
    """

    name: str
    conf: Mapping[str, Any]
    requirements: Sequence[str]
    loader_module: str | None = None
    pyfunc_conf: Mapping[str, Any] = field(default_factory=dict)
    primary: bool = True


def save_model_dir(
    path: str | os.PathLike[str],
    spec: FlavorSpec,
    write: Callable[[Path], None],
    predict: Callable[[Any], Any] | None = None,
    **options: Unpack[SaveOptions],
) -> Model:
    """Write a complete model directory at ``path`` and return its :class:`Model`.

    Args:
        path: a directory that does not exist yet, or is empty.
        spec: the flavor's ``MLmodel`` entries and requirements.
        write: writes the flavor's own files into the directory it is given.
        predict: the model's prediction function, used to infer the signature's outputs from
            the input example; inputs only when omitted.
        **options: see :class:`SaveOptions`.

    Raises:
        ResourceAlreadyExists: when ``path`` exists and is not empty.
        InvalidParameterValue: for a bad option; nothing is left at ``path`` then.
    """
    model_dir = Path(path)
    created = _prepare(model_dir)
    try:
        write(model_dir)
        return _complete(model_dir, spec, predict, options)
    except BaseException:
        _discard(model_dir, created)
        raise


def with_mlmodel(options: SaveOptions, mlmodel: Model) -> SaveOptions:
    """``options`` with ``mlmodel`` set: what a flavor's ``log_model`` passes to its
    ``save_model``."""
    merged = options.copy()
    merged["mlmodel"] = mlmodel
    return merged


def _prepare(model_dir: Path) -> bool:
    """Make ``model_dir`` ready to write; whether it was created here."""
    if model_dir.exists():
        if not model_dir.is_dir() or any(model_dir.iterdir()):
            raise ResourceAlreadyExists(f"Path {str(model_dir)!r} already exists and is not empty")
        return False
    model_dir.mkdir(parents=True)
    return True


def _discard(model_dir: Path, created: bool) -> None:
    """Remove what a failed save wrote (the directory was empty or absent before)."""
    if created:
        shutil.rmtree(model_dir, ignore_errors=True)
        return
    for child in model_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _complete(
    model_dir: Path,
    spec: FlavorSpec,
    predict: Callable[[Any], Any] | None,
    options: SaveOptions,
) -> Model:
    code = copy_code_paths(model_dir, options.get("code_paths"))
    mlmodel = options.get("mlmodel") or Model()
    example = options.get("input_example")
    if example is not None:
        from slipway.models.input_example import save_input_example

        mlmodel.saved_input_example_info = save_input_example(model_dir, example)
    signature = options.get("signature")
    if signature is None and example is not None:
        signature = _infer_signature(example, predict)
    mlmodel.signature = signature if signature is not False else None
    if options.get("metadata") is not None:
        mlmodel.metadata = options.get("metadata")
    requirements = resolve_requirements(
        spec.requirements, options.get("pip_requirements"), options.get("extra_pip_requirements")
    )
    env = write_environment(model_dir, requirements)
    if spec.loader_module is not None:
        mlmodel.add_flavor(
            PYFUNC_FLAVOR,
            **spec.pyfunc_conf,
            loader_module=spec.loader_module,
            python_version=python_version(),
            env=env,
            code=code,
        )
    if spec.primary:
        mlmodel.add_flavor(spec.name, **spec.conf, code=code)
    mlmodel.model_size_bytes = _size(model_dir)
    mlmodel.save(model_dir)
    return mlmodel


def _infer_signature(example: Any, predict: Callable[[Any], Any] | None) -> ModelSignature | None:
    """The signature of ``example`` and of the model's output for it (MLflow does the same);
    a model that fails on its own example still gets its inputs recorded."""
    from slipway.models.signature import infer_signature

    output = None
    if predict is not None:
        try:
            output = predict(example)
        except Exception as exc:
            _log.warning("Inferring the signature's outputs failed: predict raised %r", exc)
    try:
        return infer_signature(example, output)
    except Exception as exc:
        _log.warning("Could not infer a signature from the input example: %s", exc)
        return None


def _size(model_dir: Path) -> int:
    return sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())


# -- logging and registering --------------------------------------------------------------


def log_model_dir(
    artifact_path: str,
    save: Callable[[Path, Model], Model],
    registered_model_name: str | None = None,
) -> ModelInfo:
    """Save a model with ``save`` into a temporary directory, upload it to the active run
    (one is started if none is active, as MLflow does) at ``artifact_path``, and register it
    as a new version of ``registered_model_name`` when given.

    Args:
        artifact_path: where the model goes inside the run's artifacts.
        save: writes the model directory at the path it is given, filling in the
            :class:`Model` it is given (which carries ``run_id`` and ``artifact_path``).
        registered_model_name: the registered model to add a version to (created if needed).

    Raises:
        InvalidParameterValue: for an empty or unsafe ``artifact_path``.
    """
    from slipway.artifacts.paths import join_uri, safe_relative_path
    from slipway.tracking import fluent

    rel = safe_relative_path(artifact_path)
    if not rel:
        raise InvalidParameterValue("artifact_path must name a folder inside the run's artifacts")
    run_id = (fluent.active_run() or fluent.start_run()).info.run_id
    client = fluent.get_client()
    with tempfile.TemporaryDirectory(prefix="slipway-model-") as tmp:
        local = Path(tmp) / "model"
        model = save(local, Model(artifact_path=rel, run_id=run_id))
        client.log_artifacts(run_id, local, rel)
    run = client.get_run(run_id)
    _record_in_history(client, run_id, run.data.tags.get(LOGGED_MODELS_TAG), model)
    version = None
    if registered_model_name is not None:
        source = join_uri(run.info.artifact_uri, rel)
        version = register_model_version(registered_model_name, source, run_id)
    return ModelInfo.from_model(model, f"runs:/{run_id}/{rel}", version)


def register_model_version(name: str, source: str, run_id: str | None = None) -> int:
    """Add a version of registered model ``name`` (created when missing) for the model at
    ``source``; the new version number."""
    from slipway.registry.store import get_registry_store

    store = get_registry_store()
    with contextlib.suppress(ResourceAlreadyExists):
        store.create_registered_model(name)
    return int(store.create_model_version(name, source=source, run_id=run_id).version)


def _record_in_history(client: Any, run_id: str, previous: str | None, model: Model) -> None:
    """Append the model to the run's ``mlflow.log-model.history`` tag, as MLflow does; a
    history that is unreadable or too long for a tag is left alone (with a log message),
    since the model itself is already safely logged."""
    entry = {
        key: value
        for key, value in model.to_dict().items()
        if key in ("artifact_path", "run_id", "utc_time_created", "model_uuid")
    }
    entry["flavors"] = {
        name: {k: v for k, v in conf.items() if k != "config"}
        for name, conf in model.flavors.items()
    }
    try:
        history = json.loads(previous) if previous else []
        if not isinstance(history, list):
            raise ValueError("not a JSON list")
        history.append(entry)
        client.set_tag(run_id, LOGGED_MODELS_TAG, json.dumps(history))
    except (ValueError, InvalidParameterValue) as exc:
        _log.warning("Not recording the model in the run's %s tag: %s", LOGGED_MODELS_TAG, exc)


__all__ = [
    "LOGGED_MODELS_TAG",
    "FlavorSpec",
    "SaveOptions",
    "log_model_dir",
    "register_model_version",
    "save_model_dir",
    "with_mlmodel",
]
