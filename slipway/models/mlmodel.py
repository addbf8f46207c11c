"""The ``MLmodel`` file: the YAML at the root of every model directory.

Slipway writes the fields MLflow writes, with the same names and formats, so MLflow reads a
Slipway model natively: ``artifact_path`` and ``run_id`` (only when logged to a run),
``flavors``, ``model_uuid`` (a fresh uuid4 hex on every save), ``utc_time_created`` (a naive
UTC timestamp as ``str(datetime)`` writes it: ``2025-01-31 12:34:56.789012``),
``model_size_bytes``, and, when present, ``signature`` (as
:meth:`~slipway.models.signature.ModelSignature.to_dict` writes it),
``saved_input_example_info`` and ``metadata``.

It writes ``slipway_version`` instead of ``mlflow_version``: MLflow's reader does not need
the latter (it keeps unknown keys as attributes), and claiming an MLflow version would be
false. Keys this class does not know (``mlflow_version``, ``resources``, ``model_id``, ...)
are kept in :attr:`Model.extra` and written back unchanged.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from slipway.exceptions import InvalidParameterValue, ResourceDoesNotExist

if TYPE_CHECKING:
    from slipway.models.signature import ModelSignature

MLMODEL_FILE = "MLmodel"
PYFUNC_FLAVOR = "python_function"

_KNOWN = (
    "artifact_path",
    "run_id",
    "flavors",
    "signature",
    "saved_input_example_info",
    "model_uuid",
    "utc_time_created",
    "model_size_bytes",
    "metadata",
    "slipway_version",
)


def _utc_now() -> str:
    return str(datetime.now(UTC).replace(tzinfo=None))


def _slipway_version() -> str:
    from slipway import __version__

    return __version__


class Model:
    """One model directory's description, as read from or written to ``MLmodel``.

    Args:
        artifact_path: where the model was logged inside its run's artifacts.
        run_id: the run it was logged to.
        flavors: flavor name -> that flavor's configuration.
        signature: the input, output and params schema.
        saved_input_example_info: where the input example is and how it is encoded.
        model_uuid: the identity of this save; a new uuid4 hex when omitted.
        utc_time_created: when it was saved; now when omitted.
        model_size_bytes: the size of the directory's files.
        metadata: free-form user metadata.
        slipway_version: the Slipway version that wrote it; this one when omitted.
        extra: other keys found in the file, written back as they were.
    """

    def __init__(
        self,
        artifact_path: str | None = None,
        run_id: str | None = None,
        flavors: dict[str, dict[str, Any]] | None = None,
        signature: ModelSignature | None = None,
        saved_input_example_info: dict[str, Any] | None = None,
        model_uuid: str | None = None,
        utc_time_created: str | None = None,
        model_size_bytes: int | None = None,
        metadata: dict[str, Any] | None = None,
        slipway_version: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.artifact_path = artifact_path
        self.run_id = run_id
        self.flavors: dict[str, dict[str, Any]] = flavors if flavors is not None else {}
        self.signature = signature
        self.saved_input_example_info = saved_input_example_info
        self.model_uuid = model_uuid or uuid.uuid4().hex
        self.utc_time_created = utc_time_created or _utc_now()
        self.model_size_bytes = model_size_bytes
        self.metadata = metadata
        self.slipway_version = slipway_version or _slipway_version()
        self.extra: dict[str, Any] = dict(extra or {})

    def __repr__(self) -> str:
        return f"Model(flavors={sorted(self.flavors)}, model_uuid={self.model_uuid!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    # -- flavors -----------------------------------------------------------------------------

    def add_flavor(self, name: str, **conf: Any) -> Model:
        """Record ``name``'s configuration (None values are left out); returns self."""
        self.flavors[name] = {key: value for key, value in conf.items() if value is not None}
        return self

    def flavor_conf(self, name: str) -> dict[str, Any]:
        """The configuration of flavor ``name``.

        Raises:
            InvalidParameterValue: when the model has no such flavor (naming those it has).
        """
        conf = self.flavors.get(name)
        if not isinstance(conf, dict):
            have = ", ".join(sorted(self.flavors)) or "none"
            raise InvalidParameterValue(f"The model has no {name!r} flavor (its flavors: {have})")
        return conf

    # -- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The ``MLmodel`` content: None fields are left out, as MLflow does."""
        body: dict[str, Any] = dict(self.extra)
        for key in _KNOWN:
            value = getattr(self, key)
            if key == "signature" and value is not None:
                value = value.to_dict()
            if value is not None:
                body[key] = value
        return body

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), default_flow_style=False, sort_keys=True)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``MLmodel`` to ``path`` (a file, or a directory to write it in)."""
        target = Path(path)
        if target.is_dir():
            target = target / MLMODEL_FILE
        target.write_text(self.to_yaml(), encoding="utf-8")

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Model:
        """Build a Model from parsed ``MLmodel`` content.

        Raises:
            InvalidParameterValue: when a field has the wrong type.
        """
        from slipway.models.signature import ModelSignature

        flavors = body.get("flavors") or {}
        if not isinstance(flavors, dict) or not all(
            isinstance(name, str) and isinstance(conf, dict) for name, conf in flavors.items()
        ):
            raise InvalidParameterValue("'flavors' must map flavor names to mappings")
        signature = body.get("signature")
        if signature is not None and not isinstance(signature, dict):
            raise InvalidParameterValue("'signature' must be a mapping")
        example = body.get("saved_input_example_info")
        if example is not None and not isinstance(example, dict):
            raise InvalidParameterValue("'saved_input_example_info' must be a mapping")
        size = body.get("model_size_bytes")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
            raise InvalidParameterValue("'model_size_bytes' must be an integer")
        return cls(
            artifact_path=_optional_str(body, "artifact_path"),
            run_id=_optional_str(body, "run_id"),
            flavors=dict(flavors),
            signature=ModelSignature.from_dict(signature) if signature else None,
            saved_input_example_info=example,
            model_uuid=_optional_str(body, "model_uuid"),
            utc_time_created=_optional_str(body, "utc_time_created"),
            model_size_bytes=size,
            metadata=body.get("metadata"),
            slipway_version=_optional_str(body, "slipway_version"),
            extra={key: value for key, value in body.items() if key not in _KNOWN},
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Model:
        """Read the ``MLmodel`` file at ``path``, or inside directory ``path``.

        Raises:
            ResourceDoesNotExist: when ``path`` does not exist.
            InvalidParameterValue: naming the file when it is missing from an existing
                directory, unreadable, not YAML, truncated or not a mapping.
        """
        target = Path(path)
        if not target.exists():
            raise ResourceDoesNotExist(f"No model at {str(target)!r}: the path does not exist")
        if target.is_dir():
            target = target / MLMODEL_FILE
            if not target.is_file():
                raise InvalidParameterValue(
                    f"Not a model directory: {str(target)!r} is missing (every model directory "
                    f"has an {MLMODEL_FILE} file at its root)"
                )
        try:
            body = yaml.safe_load(target.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise InvalidParameterValue(
                f"Cannot read model file {str(target)!r}: {_first_line(exc)}"
            ) from None
        if not isinstance(body, dict):
            raise InvalidParameterValue(
                f"Model file {str(target)!r} is not a YAML mapping (empty, truncated or corrupt)"
            )
        if not body.get("flavors"):
            raise InvalidParameterValue(f"Model file {str(target)!r} lists no flavors")
        try:
            return cls.from_dict(body)
        except InvalidParameterValue as exc:
            reason = exc.message
        except (ValueError, KeyError, TypeError) as exc:  # a malformed signature
            reason = _first_line(exc)
        raise InvalidParameterValue(f"Model file {str(target)!r} is invalid: {reason}")


def model_file(model_dir: Path, relative: object, what: str) -> Path:
    """The file ``relative`` (a path an ``MLmodel`` entry names) inside ``model_dir``.

    Raises:
        InvalidParameterValue: naming the file when the entry is not a safe relative path
            inside the directory, or nothing is there.
    """
    from slipway.artifacts.paths import resolve_within

    if not isinstance(relative, str) or not relative:
        raise InvalidParameterValue(
            f"Model file {str(model_dir / MLMODEL_FILE)!r} does not name the {what}"
        )
    path = resolve_within(model_dir, relative)
    if not path.exists():
        raise InvalidParameterValue(f"The {what} {str(model_dir / relative)!r} is missing")
    return path


def _optional_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise InvalidParameterValue(f"{key!r} must be a string")
    return str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["MLMODEL_FILE", "PYFUNC_FLAVOR", "Model", "model_file"]
