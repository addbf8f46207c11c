"""Compiling pipelines to Kubeflow's IR, checked by Kubeflow's own SDK: the protobuf schema
parses the IR (unknown fields are refused), ``load_component_from_file`` loads the YAML, and the
loaded component compiles inside a real ``@kfp.dsl.pipeline``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kfp
import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipelines.kfp import shapes
from slipway import __version__
from slipway.exceptions import InvalidParameterValue
from slipway.pipelines import component, condition, pipeline
from slipway.pipelines.kfp import check_ir, compile_pipeline, write_pipeline_yaml


def _parse(doc: dict[str, Any]) -> None:
    """Kubeflow's schema accepts ``doc`` (and each executor, which the schema keeps as a
    free-form Struct) with no unknown field."""
    json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec())
    json_format.ParseDict(doc["deploymentSpec"], pipeline_spec_pb2.PipelineDeploymentConfig())


def _dag(doc: dict[str, Any], component_name: str) -> dict[str, Any]:
    spec = doc["root"] if component_name == "root" else doc["components"][component_name]
    return spec["dag"]["tasks"]  # type: ignore[no-any-return]


def _executor(doc: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    label = doc["components"][task["componentRef"]["name"]]["executorLabel"]
    return doc["deploymentSpec"]["executors"][label]  # type: ignore[no-any-return]


@pytest.mark.parametrize("shape", list(shapes.SHAPES))
def test_shape_compiles_and_kubeflow_accepts_it(shape: str, tmp_path: Path) -> None:
    p, arguments = shapes.SHAPES[shape]
    doc = compile_pipeline(p)
    _parse(doc)
    assert doc["schemaVersion"] == "2.1.0"
    assert doc["sdkVersion"] == f"slipway-{__version__}"
    assert compile_pipeline(p) == doc  # deterministic

    path = tmp_path / "pipeline.yaml"
    write_pipeline_yaml(p, path)
    text = path.read_text()
    assert text.startswith("# Kubeflow Pipelines IR (PipelineSpec, schema 2.1.0)")
    assert yaml.safe_load(text) == doc

    loaded = kfp.components.load_component_from_file(str(path))
    assert set(loaded.component_spec.inputs or {}) == set(p.graph.parameters)
    assert set(loaded.component_spec.outputs or {}) == set(p.graph.outputs)

    @kfp.dsl.pipeline(name="outer")
    def outer():  # type: ignore[no-untyped-def]  # kfp reads the annotation text
        loaded(**arguments)

    out = tmp_path / "outer.yaml"
    kfp.compiler.Compiler().compile(outer, str(out))
    outer_doc = yaml.safe_load(out.read_text())
    (task,) = outer_doc["root"]["dag"]["tasks"].values()
    passed = task.get("inputs", {}).get("parameters", {})
    # Kubeflow writes numbers as floats: 4.0 == 4
    assert {k: v["runtimeValue"]["constant"] for k, v in passed.items()} == arguments
    commands = [
        e["container"]["command"]
        for e in outer_doc["deploymentSpec"]["executors"].values()
        if "container" in e
    ]
    for command in commands:
        assert "slipway.pipelines.kfp.executor_main" in command[5]


def test_linear_chain_reads_outputs_and_parameters() -> None:
    doc = compile_pipeline(shapes.linear)
    tasks = _dag(doc, "root")
    assert sorted(tasks) == ["add", "add-2", "add-3"]
    assert tasks["add"]["inputs"]["parameters"]["a"] == {"componentInputParameter": "n"}
    assert tasks["add-2"]["inputs"]["parameters"] == {
        "a": {"taskOutputParameter": {"producerTask": "add", "outputParameterKey": "Output"}},
        "b": {"runtimeValue": {"constant": 2}},
    }
    assert tasks["add-2"]["dependentTasks"] == ["add"]
    assert tasks["add-3"]["dependentTasks"] == ["add-2"]
    assert "dependentTasks" not in tasks["add"]
    assert doc["root"]["inputDefinitions"]["parameters"]["n"] == {
        "parameterType": "NUMBER_INTEGER",
        "defaultValue": 3,
        "isOptional": True,
    }
    assert doc["root"]["outputDefinitions"]["parameters"]["Output"] == {
        "parameterType": "NUMBER_INTEGER"
    }
    assert doc["root"]["dag"]["outputs"]["parameters"]["Output"] == {
        "valueFromParameter": {"producerSubtask": "add-3", "outputParameterKey": "Output"}
    }
    # one component and one executor for the three tasks, which share their options
    assert list(doc["components"]) == ["comp-add"]
    assert list(doc["deploymentSpec"]["executors"]) == ["exec-add"]


def test_diamond_waits_for_both_branches() -> None:
    tasks = _dag(compile_pipeline(shapes.diamond), "root")
    assert tasks["add-3"]["dependentTasks"] == ["add-2", "split"]
    assert tasks["add-3"]["inputs"]["parameters"]["b"] == {
        "taskOutputParameter": {"producerTask": "split", "outputParameterKey": "train"}
    }


def test_fan_out_and_collected_parameters_and_artifacts() -> None:
    doc = compile_pipeline(shapes.fan_out_in)
    assert doc["pipelineInfo"] == {"name": "fan-out-in", "displayName": "fan_out_in"}
    root = _dag(doc, "root")
    loop = root["for-loop-1"]
    assert loop["parameterIterator"] == {
        "itemInput": "pipelinechannel--loop-item-param-1",
        "items": {"raw": "[0.1, 0.2, 0.3]"},
    }
    assert loop["iteratorPolicy"] == {"parallelismLimit": 2}
    assert loop["inputs"]["artifacts"]["pipelinechannel--make-data"] == {
        "taskOutputArtifact": {"producerTask": "make", "outputArtifactKey": "data"}
    }
    assert loop["dependentTasks"] == ["make"]
    body = doc["components"]["comp-for-loop-1"]
    inner = body["dag"]["tasks"]["train"]
    assert inner["inputs"]["parameters"]["lr"] == {
        "componentInputParameter": "pipelinechannel--loop-item-param-1"
    }
    assert inner["inputs"]["artifacts"]["data"] == {
        "componentInputArtifact": "pipelinechannel--make-data"
    }
    assert body["inputDefinitions"]["parameters"]["pipelinechannel--loop-item-param-1"] == {
        "parameterType": "NUMBER_DOUBLE"
    }
    assert body["dag"]["outputs"] == {
        "parameters": {
            "pipelinechannel--train-Output": {
                "valueFromParameter": {"producerSubtask": "train", "outputParameterKey": "Output"}
            }
        },
        "artifacts": {
            "pipelinechannel--train-model": {
                "artifactSelectors": [{"producerSubtask": "train", "outputArtifactKey": "model"}]
            }
        },
    }
    assert body["outputDefinitions"]["parameters"]["pipelinechannel--train-Output"] == {
        "parameterType": "LIST"
    }
    assert body["outputDefinitions"]["artifacts"]["pipelinechannel--train-model"] == {
        "artifactType": {"schemaTitle": "system.Model", "schemaVersion": "0.0.1"},
        "isArtifactList": True,
    }
    consumer = root["pick"]
    assert consumer["dependentTasks"] == ["for-loop-1"]
    assert consumer["inputs"]["parameters"]["scores"] == {
        "taskOutputParameter": {
            "producerTask": "for-loop-1",
            "outputParameterKey": "pipelinechannel--train-Output",
        }
    }
    assert consumer["inputs"]["artifacts"]["models"] == {
        "taskOutputArtifact": {
            "producerTask": "for-loop-1",
            "outputArtifactKey": "pipelinechannel--train-model",
        }
    }
    assert doc["components"]["comp-pick"]["inputDefinitions"]["artifacts"]["models"][
        "isArtifactList"
    ]


def test_nested_loops_pass_collected_values_up_through_both() -> None:
    doc = compile_pipeline(shapes.nested_loops)
    outer = doc["components"]["comp-for-loop-1"]
    inner = doc["components"]["comp-for-loop-2"]
    assert outer["dag"]["tasks"]["for-loop-2"]["inputs"]["artifacts"] == {
        "pipelinechannel--make-data": {"componentInputArtifact": "pipelinechannel--make-data"}
    }
    assert outer["dag"]["outputs"]["parameters"]["pipelinechannel--train-Output"] == {
        "valueFromParameter": {
            "producerSubtask": "for-loop-2",
            "outputParameterKey": "pipelinechannel--train-Output",
        }
    }
    assert inner["dag"]["outputs"]["artifacts"]["pipelinechannel--train-model"] == {
        "artifactSelectors": [{"producerSubtask": "train", "outputArtifactKey": "model"}]
    }
    for body in (outer, inner):
        assert body["outputDefinitions"]["parameters"]["pipelinechannel--train-Output"] == {
            "parameterType": "LIST"
        }
    assert outer["dag"]["tasks"]["add"]["inputs"]["parameters"]["a"] == {
        "componentInputParameter": "pipelinechannel--loop-item-param-1"
    }
    assert _dag(doc, "root")["pick"]["dependentTasks"] == ["for-loop-1"]


def test_condition_chain_combines_negated_earlier_tests() -> None:
    doc = compile_pipeline(shapes.branches)
    root = _dag(doc, "root")
    first = "inputs.parameter_values['pipelinechannel--split-test'] > "
    first += "inputs.parameter_values['pipelinechannel--threshold']"
    second = "int(inputs.parameter_values['pipelinechannel--split-train']) == 2"
    conditions = {
        name: root[name]["triggerPolicy"]["condition"] for name in root if "condition" in name
    }
    assert conditions == {
        "condition-1": first,
        "condition-2": f"!({first}) && {second}",
        "condition-3": f"!({first}) && !({second})",
        "condition-4": "inputs.parameter_values['pipelinechannel--label'] != 'it\\'s'",
    }
    assert root["condition-3"]["inputs"]["parameters"] == {
        "pipelinechannel--split-test": {
            "taskOutputParameter": {"producerTask": "split", "outputParameterKey": "test"}
        },
        "pipelinechannel--threshold": {"componentInputParameter": "threshold"},
        "pipelinechannel--split-train": {
            "taskOutputParameter": {"producerTask": "split", "outputParameterKey": "train"}
        },
    }
    assert root["condition-3"]["dependentTasks"] == ["split"]
    body = doc["components"]["comp-condition-2"]
    assert body["inputDefinitions"]["parameters"]["pipelinechannel--split-train"] == {
        "parameterType": "NUMBER_INTEGER"
    }
    assert body["dag"]["tasks"]["echo-2"]["inputs"]["parameters"]["text"] == {
        "runtimeValue": {"constant": "two"}
    }
    inner = doc["components"]["comp-condition-4"]["dag"]["tasks"]["echo-4"]
    assert inner["inputs"]["parameters"]["text"] == {
        "componentInputParameter": "pipelinechannel--label"
    }


def test_exit_handler_task_runs_after_the_group_with_its_final_status() -> None:
    doc = compile_pipeline(shapes.guarded)
    root = _dag(doc, "root")
    assert sorted(root) == ["exit-handler-1", "notify"]
    exit_task = root["notify"]
    assert exit_task["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert exit_task["dependentTasks"] == ["exit-handler-1"]
    assert exit_task["inputs"]["parameters"] == {
        "channel": {"runtimeValue": {"constant": "alerts"}},
        "status": {"taskFinalStatus": {"producerTask": "exit-handler-1"}},
    }
    assert doc["components"]["comp-notify"]["inputDefinitions"]["parameters"]["status"] == {
        "parameterType": "TASK_FINAL_STATUS",
        "isOptional": True,
    }
    group = doc["components"]["comp-exit-handler-1"]
    assert sorted(group["dag"]["tasks"]) == ["evaluate", "make", "train"]
    assert root["exit-handler-1"]["inputs"]["parameters"] == {
        "pipelinechannel--n": {"componentInputParameter": "n"}
    }
    assert doc["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]["metrics"] == {
        "artifactType": {"schemaTitle": "system.Metrics", "schemaVersion": "0.0.1"}
    }


def test_nested_pipeline_is_a_dag_component() -> None:
    doc = compile_pipeline(shapes.with_subpipeline)
    root = _dag(doc, "root")
    assert sorted(root) == ["add", "add-2", "prepare"]
    sub = doc["components"]["comp-prepare"]
    assert sorted(sub["dag"]["tasks"]) == ["add", "make"]  # named as in the sub-pipeline
    assert sub["dag"]["tasks"]["make"]["inputs"]["parameters"]["n"] == {
        "componentInputParameter": "pipelinechannel--add-Output"
    }
    assert root["prepare"]["inputs"]["parameters"] == {
        "pipelinechannel--add-Output": {
            "taskOutputParameter": {"producerTask": "add", "outputParameterKey": "Output"}
        }
    }
    assert root["prepare"]["dependentTasks"] == ["add"]
    assert root["add-2"]["inputs"]["parameters"]["a"] == {
        "taskOutputParameter": {
            "producerTask": "prepare",
            "outputParameterKey": "pipelinechannel--prepare-add-Output",
        }
    }
    assert root["add-2"]["dependentTasks"] == ["prepare"]
    assert sub["outputDefinitions"]["parameters"] == {
        "pipelinechannel--prepare-add-Output": {"parameterType": "NUMBER_INTEGER"}
    }


def test_step_options_map_to_retry_resources_env_and_caching() -> None:
    doc = compile_pipeline(shapes.options, image="registry.local/base:1")
    root = _dag(doc, "root")
    heavy = root["heavy"]
    assert heavy["retryPolicy"] == {
        "maxRetryCount": 3,
        "backoffDuration": "5s",
        "backoffFactor": 3.0,
        "backoffMaxDuration": "120s",
    }
    assert heavy["cachingOptions"] == {}
    container = _executor(doc, heavy)["container"]
    assert container["image"] == "python:3.12-slim"  # the component's own image
    assert container["resources"] == {
        "cpuRequest": 0.5,
        "cpuLimit": 0.5,
        "resourceCpuRequest": "500m",
        "resourceCpuLimit": "500m",
        "memoryRequest": 2 * 2**30 / 1e9,
        "memoryLimit": 2 * 2**30 / 1e9,
        "resourceMemoryRequest": "2Gi",
        "resourceMemoryLimit": "2Gi",
        "accelerator": {
            "resourceType": "nvidia.com/gpu",
            "resourceCount": "1",
            "type": "nvidia.com/gpu",
            "count": "1",
        },
    }
    assert container["env"] == [
        {"name": "MODE", "value": "fast"},
        {"name": "SLIPWAY_STEP_TIMEOUT", "value": "600"},
    ]
    install = container["command"][2]
    assert f"--no-warn-script-location slipway=={__version__} scikit-learn==1.5.0 &&" in install

    plain = root["add"]
    assert plain["retryPolicy"] == {
        "maxRetryCount": 1,
        "backoffDuration": "0.5s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "3600s",
    }
    assert plain["cachingOptions"] == {}
    plain_container = _executor(doc, plain)["container"]
    assert plain_container["image"] == "registry.local/base:1"  # compile's default image
    assert plain_container["env"] == [{"name": "K", "value": "v"}]
    assert "resources" not in plain_container


def test_cache_version_is_an_argument_and_cache_on_is_enable_cache() -> None:
    @component(cache_version="v2")
    def versioned(x: int) -> int:
        return x

    @pipeline
    def p() -> None:
        versioned(x=1)
        versioned(x=2).set_options(cache_version="v3")

    doc = compile_pipeline(p)
    _parse(doc)
    root = _dag(doc, "root")
    assert root["versioned"]["cachingOptions"] == {"enableCache": True}
    args = [_executor(doc, root[t])["container"]["args"] for t in ("versioned", "versioned-2")]
    assert args[0][-2:] == ["--cache_version", "v2"]
    assert args[1][-2:] == ["--cache_version", "v3"]
    # different containers: two components, named as Kubeflow numbers them
    assert {root[t]["componentRef"]["name"] for t in root} == {
        "comp-versioned",
        "comp-versioned-2",
    }
    assert set(doc["deploymentSpec"]["executors"]) == {"exec-versioned", "exec-versioned-2"}


def test_loops_over_a_parameter_and_a_task_output() -> None:
    doc = compile_pipeline(shapes.loop_sources)
    root = _dag(doc, "root")
    over_param = root["for-loop-1"]
    assert over_param["parameterIterator"] == {
        "itemInput": "pipelinechannel--names-loop-item",
        "items": {"inputParameter": "pipelinechannel--names"},
    }
    assert over_param["inputs"]["parameters"] == {
        "pipelinechannel--names": {"componentInputParameter": "names"}
    }
    assert "iteratorPolicy" not in over_param  # parallelism 0: no limit
    body = doc["components"]["comp-for-loop-1"]
    assert body["inputDefinitions"]["parameters"] == {
        "pipelinechannel--names": {"parameterType": "LIST"},
        "pipelinechannel--names-loop-item": {"parameterType": "STRING"},
    }
    over_output = root["for-loop-2"]
    assert over_output["parameterIterator"] == {
        "itemInput": "pipelinechannel--numbers-Output-loop-item",
        "items": {"inputParameter": "pipelinechannel--numbers-Output"},
    }
    assert over_output["iteratorPolicy"] == {"parallelismLimit": 4}
    assert over_output["dependentTasks"] == ["numbers"]
    add = doc["components"]["comp-for-loop-2"]["dag"]["tasks"]["add"]
    assert add["inputs"]["parameters"]["a"] == {
        "componentInputParameter": "pipelinechannel--numbers-Output-loop-item"
    }


def test_loop_item_fields_use_expression_selectors() -> None:
    doc = compile_pipeline(shapes.loop_fields)
    body = doc["components"]["comp-for-loop-1"]
    assert body["inputDefinitions"]["parameters"]["pipelinechannel--loop-item-param-1"] == {
        "parameterType": "STRUCT"
    }
    tasks = body["dag"]["tasks"]
    assert tasks["train"]["inputs"]["parameters"]["lr"] == {
        "componentInputParameter": "pipelinechannel--loop-item-param-1",
        "parameterExpressionSelector": 'parseJson(string_value)["lr"]',
    }
    branch = tasks["condition-2"]
    assert branch["inputs"]["parameters"] == {
        "pipelinechannel--loop-item-param-1-subvar-tag": {
            "componentInputParameter": "pipelinechannel--loop-item-param-1",
            "parameterExpressionSelector": 'parseJson(string_value)["tag"]',
        }
    }
    assert branch["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--loop-item-param-1-subvar-tag'] == 'a'"
    )
    inner = doc["components"]["comp-condition-2"]
    assert inner["inputDefinitions"]["parameters"] == {
        "pipelinechannel--loop-item-param-1-subvar-tag": {"parameterType": "STRING"}
    }
    assert inner["dag"]["tasks"]["echo"]["inputs"]["parameters"]["text"] == {
        "componentInputParameter": "pipelinechannel--loop-item-param-1-subvar-tag"
    }


def test_importer_is_a_kubeflow_importer() -> None:
    doc = compile_pipeline(shapes.imported)
    root = _dag(doc, "root")
    task = root["importer-dataset"]
    assert task["inputs"]["parameters"]["uri"] == {"componentInputParameter": "uri"}
    assert _executor(doc, task) == {
        "importer": {
            "artifactUri": {"runtimeParameter": "uri"},
            "typeSchema": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
            "reimport": True,
        }
    }
    assert root["train"]["inputs"]["artifacts"]["data"] == {
        "taskOutputArtifact": {"producerTask": "importer-dataset", "outputArtifactKey": "artifact"}
    }


def test_embedded_program_holds_the_function_and_its_helpers() -> None:
    doc = compile_pipeline(shapes.diamond)
    program = _executor(doc, _dag(doc, "root")["split"])["container"]["command"][6]
    assert "def split(n: int) -> Split:" in program
    assert "class Split(NamedTuple):" in program
    assert "from typing import NamedTuple" in program
    assert "@component" not in program
    assert program.index("class Split") < program.index("def split")


def test_pipeline_output_must_come_from_a_task() -> None:
    @pipeline
    def passthrough(x: int = 1) -> int:
        shapes.add(a=x)
        return x  # type: ignore[return-value]

    with pytest.raises(InvalidParameterValue, match="outputs from tasks"):
        compile_pipeline(passthrough)


def test_component_without_source_is_refused() -> None:
    namespace: dict[str, Any] = {}
    exec("def typed_at_prompt(x: int) -> int:\n    return x\n", namespace)
    comp = component(namespace["typed_at_prompt"])

    @pipeline
    def p() -> None:
        comp(x=1)

    with pytest.raises(InvalidParameterValue, match="cannot be read"):
        compile_pipeline(p)


def test_groups_that_wait_on_each_other_are_refused() -> None:
    @pipeline
    def tangled(flag: bool = True) -> None:
        with condition(flag == True):  # noqa: E712
            inside = shapes.add(a=1)
            later = shapes.add(a=2)
        outside = shapes.add(a=inside.output)
        later.after(outside)

    with pytest.raises(InvalidParameterValue, match="cycle: condition-1 -> add-3 -> condition-1"):
        compile_pipeline(tangled)


# -- check_ir ------------------------------------------------------------------------------


@pytest.fixture
def good() -> dict[str, Any]:
    return compile_pipeline(shapes.diamond)


def test_check_ir_accepts_compiled_ir(good: dict[str, Any]) -> None:
    check_ir(good)


def _broken(good: dict[str, Any], change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(good)
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["components"].pop("comp-split"),
            "task split refers to component 'comp-split', which is not in components",
        ),
        (
            lambda d: d["deploymentSpec"]["executors"].pop("exec-add"),
            "component comp-add has executorLabel 'exec-add', which is not an executor",
        ),
        (
            lambda d: d["root"]["dag"]["tasks"]["add-2"]["inputs"]["parameters"]["a"][
                "taskOutputParameter"
            ].update(producerTask="ghost"),
            "task add-2 reads a parameter of 'ghost', which is not in its DAG",
        ),
        (
            lambda d: d["root"]["dag"]["tasks"]["add-2"]["inputs"]["parameters"]["a"][
                "taskOutputParameter"
            ].update(outputParameterKey="nope"),
            "reads output 'nope' of task add",
        ),
        (
            lambda d: d["root"]["dag"]["tasks"]["add"].update(dependentTasks=["add-3"]),
            "cycle: add -> add-3 -> add-2 -> add",
        ),
        (
            lambda d: d["root"]["dag"]["tasks"]["add"].update(dependentTasks=["missing"]),
            "depends on 'missing', which is not another task of its DAG",
        ),
        (
            lambda d: d["root"]["dag"]["tasks"]["add"]["inputs"]["parameters"]["a"].update(
                componentInputParameter="m"
            ),
            "reads input parameter 'm', not an input of root",
        ),
        (
            lambda d: d["root"]["dag"]["tasks"]["add"]["inputs"]["parameters"].update(
                z={"runtimeValue": {"constant": 1}}
            ),
            "passes parameter 'z', which component comp-add does not declare",
        ),
        (
            lambda d: d["root"]["dag"]["outputs"]["parameters"]["Output"][
                "valueFromParameter"
            ].update(producerSubtask="x"),
            "output Output comes from 'x', not in its DAG",
        ),
    ],
)
def test_check_ir_names_what_is_broken(good: dict[str, Any], change: Any, message: str) -> None:
    doc = _broken(good, change)
    with pytest.raises(InvalidParameterValue, match="Invalid Kubeflow pipeline IR") as info:
        check_ir(doc)
    assert message in info.value.message


def test_check_ir_refuses_a_component_that_runs_itself(good: dict[str, Any]) -> None:
    doc = copy.deepcopy(good)
    doc["components"]["comp-loop"] = {
        "dag": {
            "tasks": {
                "again": {"taskInfo": {"name": "again"}, "componentRef": {"name": "comp-loop"}}
            }
        }
    }
    with pytest.raises(InvalidParameterValue, match="comp-loop -> comp-loop"):
        check_ir(doc)


def test_check_ir_refuses_what_is_not_a_pipeline_spec() -> None:
    with pytest.raises(InvalidParameterValue, match="has no 'root'"):
        check_ir({"pipelineInfo": {}, "schemaVersion": "2.1.0"})
    with pytest.raises(InvalidParameterValue, match="not a mapping"):
        check_ir(json.loads("[1]"))
    tasks = {"t": {"componentRef": "comp-x"}}  # componentRef is a mapping in the schema
    malformed = {"pipelineInfo": {}, "schemaVersion": "2.1.0", "root": {"dag": {"tasks": tasks}}}
    with pytest.raises(InvalidParameterValue, match="malformed"):
        check_ir(malformed)


def test_write_pipeline_yaml_header_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "linear.yaml"
    write_pipeline_yaml(shapes.linear, path, image="python:3.12")
    head = path.read_text().splitlines()[:5]
    assert head == [
        f"# Kubeflow Pipelines IR (PipelineSpec, schema 2.1.0), compiled by slipway-{__version__}",
        "# Name: linear",
        "# Inputs:",
        "#    n: int [Default: 3]",
        "# Outputs:",
    ]
    doc = yaml.safe_load(path.read_text())
    assert {e["container"]["image"] for e in doc["deploymentSpec"]["executors"].values()} == {
        "python:3.12"
    }
    with pytest.raises(InvalidParameterValue, match="directory"):
        write_pipeline_yaml(shapes.linear, tmp_path)
