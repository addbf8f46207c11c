"""Model flavors: how each library's models are saved, logged and loaded.

Flavors are listed here by name, as strings, and imported only when first used, so that
``import slipway`` never pulls in scikit-learn, torch or any other heavy library.

The flavor contract
===================

A flavor is one module, ``slipway/flavors/<name>.py``, that defines:

``FLAVOR_NAME: str``
    The key under ``flavors:`` in the ``MLmodel`` file (``"sklearn"``, ``"pytorch"``, ...).
    Use MLflow's name for the same library, so that MLflow reads the model natively.

``save_model(model, path, *, <flavor options>, **options: Unpack[SaveOptions]) -> Model``
    Write a model directory at ``path`` and return its :class:`~slipway.models.Model`. The
    whole body is one call to :func:`slipway.models.save.save_model_dir` with a
    :class:`~slipway.models.save.FlavorSpec` (the ``MLmodel`` entries, the pyfunc loader, the
    packages to pin) and a ``write`` callback that writes the library's own files into the
    directory. ``save_model_dir`` does everything else: it refuses a non-empty ``path``,
    copies ``code_paths`` into ``code/``, saves the input example, infers a signature from
    it, writes ``requirements.txt``, ``python_env.yaml`` and ``conda.yaml``, and writes
    ``MLmodel``.

``log_model(model, artifact_path, *, registered_model_name=None, <flavor options>,
**options: Unpack[SaveOptions]) -> ModelInfo``
    One call to :func:`slipway.models.save.log_model_dir`, passing a callback that calls this
    module's ``save_model`` with the ``mlmodel`` it is given (the
    :class:`~slipway.models.Model` that carries the run id and artifact path).

``load_model(model_uri: str, dst_path=None) -> <the library's own model object>``
    Resolve the URI with :func:`slipway.models.uri.download_model`, read the ``MLmodel`` with
    :meth:`Model.load <slipway.models.Model.load>` and this flavor's entry with
    :meth:`Model.flavor_conf <slipway.models.Model.flavor_conf>`, then load the files.
    A file that is missing or unreadable is an
    :class:`~slipway.exceptions.InvalidParameterValue` that names it.

``_load_pyfunc(model_dir: pathlib.Path) -> object``
    What :func:`slipway.pyfunc.load_model` calls (``model_dir`` is the local model directory):
    return an object with ``predict(data, params=None)``. The pyfunc layer enforces the
    signature before it calls ``predict``, and has already put ``code/`` on ``sys.path``.

The heavy library is imported inside the functions that need it, never at module level.
The ``python_function`` entry of ``MLmodel`` names a ``loader_module``: write MLflow's
(``mlflow.sklearn``, ``mlflow.pytorch``, ...) so that ``mlflow.pyfunc.load_model`` reads the
model too, and list it in :data:`MLFLOW_LOADER_MODULES` so that Slipway maps it back to the
flavor here. To add a flavor: write the module, and list its name in :data:`FLAVORS`, its
MLflow loader in :data:`MLFLOW_LOADER_MODULES` and its name in ``_FLAVOR_ATTRIBUTES`` in
``slipway/__init__.py`` (which makes ``slipway.<name>`` reachable); pytorch, onnx, xgboost and
lightgbm are listed in all three already.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from slipway.exceptions import InvalidParameterValue

FLAVORS: tuple[str, ...] = ("pyfunc", "sklearn", "pytorch", "onnx", "xgboost", "lightgbm")
"""Every flavor Slipway knows, by module name under ``slipway.flavors``."""

MLFLOW_LOADER_MODULES: dict[str, str] = {
    "mlflow.pyfunc.model": "pyfunc",
    "mlflow.sklearn": "sklearn",
    "mlflow.pytorch": "pytorch",
    "mlflow.onnx": "onnx",
    "mlflow.xgboost": "xgboost",
    "mlflow.lightgbm": "lightgbm",
}
"""MLflow's pyfunc loader modules and the Slipway flavor that loads the same files, so that a
model MLflow saved loads without MLflow installed."""


def get_flavor(name: str) -> ModuleType:
    """The flavor module ``slipway.flavors.<name>``, imported on first use.

    Raises:
        InvalidParameterValue: for a name that is not in :data:`FLAVORS`, or a flavor whose
            module is not written yet.
    """
    if name not in FLAVORS:
        raise InvalidParameterValue(
            f"Unknown model flavor {name!r}; known flavors: {', '.join(FLAVORS)}"
        )
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise InvalidParameterValue(f"The {name!r} flavor is not available yet") from None


def flavor_for_loader(loader_module: str) -> ModuleType:
    """The flavor module that loads models whose ``python_function`` entry names
    ``loader_module``: one of MLflow's (see :data:`MLFLOW_LOADER_MODULES`) or one of ours.

    Raises:
        InvalidParameterValue: naming a loader module that no flavor reads.
    """
    name = MLFLOW_LOADER_MODULES.get(loader_module)
    if name is None and loader_module.startswith(f"{__name__}."):
        name = loader_module.removeprefix(f"{__name__}.")
    if name is None or name not in FLAVORS:
        raise InvalidParameterValue(
            f"Cannot load this model: its pyfunc loader module {loader_module!r} is not one "
            f"that Slipway reads (known: {', '.join(sorted(MLFLOW_LOADER_MODULES))})"
        )
    return get_flavor(name)


__all__ = ["FLAVORS", "MLFLOW_LOADER_MODULES", "flavor_for_loader", "get_flavor"]
