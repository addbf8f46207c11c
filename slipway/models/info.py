"""What ``log_model`` returns: where the model went and what it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slipway.models.mlmodel import Model
    from slipway.models.signature import ModelSignature


@dataclass(frozen=True)
class ModelInfo:
    """A logged model, with the fields of MLflow's ``ModelInfo`` that describe it.

    Attributes:
        artifact_path: where the model is inside the run's artifacts.
        flavors: the ``flavors`` section of its ``MLmodel``.
        model_uri: a URI that loads it (``runs:/<run_id>/<artifact_path>``).
        model_uuid: the identity of this save.
        run_id: the run it was logged to.
        saved_input_example_info: where the input example is, if one was saved.
        signature: its signature, if it has one.
        utc_time_created: when it was saved.
        registered_model_version: the version created when ``registered_model_name`` was given.
        metadata: the user's metadata.
    """

    artifact_path: str
    flavors: dict[str, dict[str, Any]]
    model_uri: str
    model_uuid: str
    run_id: str
    saved_input_example_info: dict[str, Any] | None = None
    signature: ModelSignature | None = None
    utc_time_created: str = ""
    registered_model_version: int | None = None
    metadata: dict[str, Any] | None = field(default=None)

    @classmethod
    def from_model(
        cls, model: Model, model_uri: str, registered_model_version: int | None = None
    ) -> ModelInfo:
        """The info of ``model``, a Model that carries ``run_id`` and ``artifact_path``."""
        return cls(
            artifact_path=model.artifact_path or "",
            flavors=model.flavors,
            model_uri=model_uri,
            model_uuid=model.model_uuid,
            run_id=model.run_id or "",
            saved_input_example_info=model.saved_input_example_info,
            signature=model.signature,
            utc_time_created=model.utc_time_created,
            registered_model_version=registered_model_version,
            metadata=model.metadata,
        )


__all__ = ["ModelInfo"]
