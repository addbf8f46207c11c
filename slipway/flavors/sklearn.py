"""scikit-learn models, in MLflow's ``sklearn`` layout (``mlflow.sklearn.load_model`` reads them).

A model directory holds ``model.pkl`` (written with cloudpickle by default, or pickle; MLflow's
``skops`` files are read too) and an ``MLmodel`` with two flavors: ``sklearn``
(``pickled_model``, ``sklearn_version``, ``serialization_format``, ``code``) and
``python_function`` (``loader_module: mlflow.sklearn``, ``model_path``, ``predict_fn``).

Loading a pickle runs code from the file: load only models you trust.
"""

from __future__ import annotations

import logging
import os
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Unpack

from slipway.exceptions import InvalidParameterValue
from slipway.models.environment import add_code_to_path
from slipway.models.info import ModelInfo
from slipway.models.mlmodel import PYFUNC_FLAVOR, Model, model_file
from slipway.models.save import (
    FlavorSpec,
    SaveOptions,
    log_model_dir,
    save_model_dir,
    with_mlmodel,
)
from slipway.models.uri import download_model

FLAVOR_NAME = "sklearn"
MODEL_FILE = "model.pkl"
SKOPS_FILE = "model.skops"
SERIALIZATION_FORMATS = ("cloudpickle", "pickle", "skops")
PREDICT_FUNCTIONS = ("predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba")

_RUNTIME = ("numpy", "scipy", "pandas")
"""What an estimator needs at load and predict time besides scikit-learn itself."""

_log = logging.getLogger(__name__)


def save_model(
    sk_model: Any,
    path: str | os.PathLike[str],
    *,
    serialization_format: str = "cloudpickle",
    pyfunc_predict_fn: str = "predict",
    skops_trusted_types: Sequence[str] | None = None,
    **options: Unpack[SaveOptions],
) -> Model:
    """Save a scikit-learn estimator as a model directory at ``path``.

    Args:
        sk_model: a fitted estimator (or pipeline).
        path: a directory that does not exist yet, or is empty.
        serialization_format: ``"cloudpickle"`` (default, like MLflow before 3), ``"pickle"``
            or ``"skops"`` (needs the ``skops`` package).
        pyfunc_predict_fn: the method the pyfunc interface calls: ``predict``,
            ``predict_proba``, ``predict_log_proba`` or ``predict_joint_log_proba``.
        skops_trusted_types: for ``"skops"``, the types beyond skops' defaults that loading
            may create (tree models need ``"sklearn.tree._tree.Tree"``); the saved file is
            loaded back once to check.
        **options: see :class:`~slipway.models.save.SaveOptions`.
    """
    import sklearn

    if serialization_format not in SERIALIZATION_FORMATS:
        raise InvalidParameterValue(
            f"Unknown serialization_format {serialization_format!r}; use one of "
            f"{', '.join(SERIALIZATION_FORMATS)}"
        )
    if pyfunc_predict_fn not in PREDICT_FUNCTIONS:
        raise InvalidParameterValue(
            f"Unknown pyfunc_predict_fn {pyfunc_predict_fn!r}; use one of "
            f"{', '.join(PREDICT_FUNCTIONS)}"
        )
    predict = getattr(sk_model, pyfunc_predict_fn, None)
    if not callable(predict):
        raise InvalidParameterValue(
            f"The {type(sk_model).__name__} model has no {pyfunc_predict_fn}() method"
        )
    data_file = SKOPS_FILE if serialization_format == "skops" else MODEL_FILE
    trusted = list(skops_trusted_types) if skops_trusted_types else None
    serializer = {"cloudpickle": "cloudpickle", "skops": "skops"}.get(serialization_format)
    spec = FlavorSpec(
        name=FLAVOR_NAME,
        conf={
            "pickled_model": data_file,
            "sklearn_version": sklearn.__version__,
            "serialization_format": serialization_format,
            "skops_trusted_types": trusted,
        },
        requirements=("scikit-learn", *([serializer] if serializer else []), *_RUNTIME),
        loader_module="mlflow.sklearn",
        pyfunc_conf={"model_path": data_file, "predict_fn": pyfunc_predict_fn},
    )
    return save_model_dir(
        path,
        spec,
        write=lambda model_dir: dump_estimator(
            sk_model, model_dir / data_file, serialization_format, trusted
        ),
        predict=predict,
        **options,
    )


def log_model(
    sk_model: Any,
    artifact_path: str,
    *,
    registered_model_name: str | None = None,
    serialization_format: str = "cloudpickle",
    pyfunc_predict_fn: str = "predict",
    skops_trusted_types: Sequence[str] | None = None,
    **options: Unpack[SaveOptions],
) -> ModelInfo:
    """Save ``sk_model`` into the active run's artifacts at ``artifact_path`` (starting a run
    if none is active) and, given ``registered_model_name``, register it as a new version.
    Other arguments as for :func:`save_model`."""
    return log_model_dir(
        artifact_path,
        lambda path, mlmodel: save_model(
            sk_model,
            path,
            serialization_format=serialization_format,
            pyfunc_predict_fn=pyfunc_predict_fn,
            skops_trusted_types=skops_trusted_types,
            **with_mlmodel(options, mlmodel),
        ),
        registered_model_name=registered_model_name,
    )


def load_model(model_uri: str, dst_path: str | os.PathLike[str] | None = None) -> Any:
    """The scikit-learn estimator saved at ``model_uri`` (any URI that
    :func:`~slipway.models.uri.download_model` resolves)."""
    model_dir = download_model(model_uri, dst_path)
    return _load(model_dir, Model.load(model_dir))


def _load_pyfunc(model_dir: Path) -> SklearnPredictor:
    """The pyfunc implementation: the estimator behind ``predict(data, params=None)``."""
    return SklearnPredictor(_load(model_dir, Model.load(model_dir)))


class SklearnPredictor:
    """An estimator behind the pyfunc interface; ``predict_proba`` and the other prediction
    methods the estimator has are exposed too, for ``pyfunc_predict_fn``."""

    def __init__(self, sk_model: Any) -> None:
        self.sk_model = sk_model
        for name in PREDICT_FUNCTIONS[1:]:
            method = getattr(sk_model, name, None)
            if callable(method):
                setattr(self, name, method)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.sk_model.predict(data)

    def get_raw_model(self) -> Any:
        return self.sk_model


def dump_estimator(
    sk_model: Any, path: Path, serialization_format: str, trusted: list[str] | None
) -> None:
    if serialization_format == "skops":
        _dump_skops(sk_model, path, trusted)
        return
    if serialization_format == "cloudpickle":
        import cloudpickle

        dump: Any = cloudpickle.dump
    else:
        dump = pickle.dump
    try:
        with path.open("wb") as out:
            # The default protocol, not the newest, so older Pythons can read the file.
            dump(sk_model, out, protocol=pickle.DEFAULT_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise InvalidParameterValue(
            f"Cannot serialize the {type(sk_model).__name__} model with "
            f"{serialization_format}: {exc}"
        ) from exc


def _dump_skops(sk_model: Any, path: Path, trusted: list[str] | None) -> None:
    """Write with skops, then load once: a file that skops would refuse to load is an error
    now rather than when the model is needed."""
    try:
        import skops.io
    except ImportError:
        raise InvalidParameterValue(
            "serialization_format='skops' needs the skops package"
        ) from None
    skops.io.dump(sk_model, path)
    untrusted = [t for t in skops.io.get_untrusted_types(file=path) if t not in (trusted or [])]
    if untrusted:
        raise InvalidParameterValue(
            f"The {type(sk_model).__name__} model holds types skops does not trust by default: "
            f"{', '.join(untrusted)}. If you trust them, pass skops_trusted_types=[...]"
        )


def _load(model_dir: Path, model: Model) -> Any:
    """The estimator in ``model_dir``: from the ``sklearn`` flavor, or, for models that
    only have a ``python_function`` entry, from its ``model_path`` as a pickle."""
    import sklearn

    if FLAVOR_NAME in model.flavors:
        conf = model.flavor_conf(FLAVOR_NAME)
        relative = conf.get("pickled_model")
        fmt = conf.get("serialization_format", "pickle")
        add_code_to_path(model_dir, conf)  # custom estimators saved with code_paths
    else:
        conf, fmt = {}, "pickle"
        relative = model.flavor_conf(PYFUNC_FLAVOR).get("model_path")
    path = model_file(model_dir, relative, "scikit-learn model file")
    saved = conf.get("sklearn_version")
    installed = sklearn.__version__
    if fmt not in SERIALIZATION_FORMATS:
        raise InvalidParameterValue(
            f"The model at {str(path)!r} uses serialization format {fmt!r}, which Slipway does "
            f"not read (known: {', '.join(SERIALIZATION_FORMATS)})"
        )
    from sklearn.exceptions import InconsistentVersionWarning

    with warnings.catch_warnings():
        # scikit-learn warns when versions differ; we say so once, through logging, below.
        warnings.simplefilter("ignore", InconsistentVersionWarning)
        try:
            estimator = load_estimator(path, fmt, conf)
        except InvalidParameterValue:
            raise
        except Exception as exc:
            raise InvalidParameterValue(
                f"Cannot load the scikit-learn model {str(path)!r}: {type(exc).__name__}: {exc}. "
                f"It was saved with scikit-learn {saved or 'of an unknown version'}; "
                f"this is scikit-learn {installed}. A truncated or corrupt file, or a different "
                "scikit-learn version, causes this."
            ) from exc
    if saved and saved != installed:
        _log.warning(
            "The model at %s was saved with scikit-learn %s and is loaded with %s; its "
            "predictions may differ",
            path,
            saved,
            installed,
        )
    return estimator


def load_estimator(path: Path, fmt: str, conf: dict[str, Any]) -> Any:
    if fmt == "skops":
        try:
            import skops.io
        except ImportError:
            raise InvalidParameterValue(
                f"The model at {str(path)!r} is saved in the skops format: install skops"
            ) from None
        return skops.io.load(path, trusted=conf.get("skops_trusted_types"))
    with path.open("rb") as handle:
        if fmt == "cloudpickle":
            import cloudpickle

            return cloudpickle.load(handle)
        return pickle.load(handle)  # noqa: S301 - the format is pickle; see the module docstring


__all__ = [
    "FLAVOR_NAME",
    "SklearnPredictor",
    "load_model",
    "log_model",
    "save_model",
]
