"""Datasets and the inputs that tie them to runs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Dataset:
    """A dataset as recorded on a run: identified by name and content digest.

    Args:
        name: a readable name ("iris-train").
        digest: a short content hash; changed data gives a changed digest.
        source_type: where it came from ("code", "local", "s3", "http", ...).
        source: a JSON string describing the source (a URI, a path).
        schema: a JSON string describing the columns, when known.
        profile: a JSON string with summary counts, when known.
    """

    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "digest": self.digest,
            "source_type": self.source_type,
            "source": self.source,
        }
        if self.schema is not None:
            out["schema"] = self.schema
        if self.profile is not None:
            out["profile"] = self.profile
        return out


@dataclass(frozen=True, slots=True)
class InputTag:
    key: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value}


@dataclass(frozen=True, slots=True)
class DatasetInput:
    """A dataset used by a run, with tags such as ``mlflow.data.context`` ("train", "eval")."""

    dataset: Dataset
    tags: tuple[InputTag, ...] = field(default_factory=tuple)

    CONTEXT_TAG = "mlflow.data.context"

    @property
    def context(self) -> str | None:
        for tag in self.tags:
            if tag.key == self.CONTEXT_TAG:
                return tag.value
        return None

    def to_dict(self) -> dict[str, object]:
        return {"tags": [t.to_dict() for t in self.tags], "dataset": self.dataset.to_dict()}
