"""Plain dataclasses for everything Slipway records; free of ORM and HTTP."""

from slipway.entities.dataset import Dataset, DatasetInput, InputTag
from slipway.entities.enums import LifecycleStage, RunStatus, ViewType
from slipway.entities.experiment import Experiment
from slipway.entities.logged_model import (
    LoggedModel,
    LoggedModelInput,
    LoggedModelMetric,
    LoggedModelOutput,
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
)
from slipway.entities.metric import ExperimentTag, Metric, MetricWithRunId, Param, RunTag
from slipway.entities.paged import PagedList
from slipway.entities.registry import (
    ApprovalPolicy,
    AuditEvent,
    Deployment,
    DeploymentStatus,
    LineageEdge,
    LineageGraph,
    LineageNode,
    ModelVersion,
    ModelVersionStatus,
    RegisteredModel,
    RegisteredModelAlias,
    RequestStatus,
    TransitionRequest,
    TransitionTarget,
)
from slipway.entities.run import Run, RunData, RunInfo, RunInputs

__all__ = [
    "ApprovalPolicy",
    "AuditEvent",
    "Dataset",
    "DatasetInput",
    "Deployment",
    "DeploymentStatus",
    "Experiment",
    "ExperimentTag",
    "InputTag",
    "LifecycleStage",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "LoggedModel",
    "LoggedModelInput",
    "LoggedModelMetric",
    "LoggedModelOutput",
    "LoggedModelParameter",
    "LoggedModelStatus",
    "LoggedModelTag",
    "Metric",
    "MetricWithRunId",
    "ModelVersion",
    "ModelVersionStatus",
    "PagedList",
    "Param",
    "RegisteredModel",
    "RegisteredModelAlias",
    "RequestStatus",
    "Run",
    "RunData",
    "RunInfo",
    "RunInputs",
    "RunStatus",
    "RunTag",
    "TransitionRequest",
    "TransitionTarget",
    "ViewType",
]
