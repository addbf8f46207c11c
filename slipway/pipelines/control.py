"""Control flow inside a ``@pipeline`` function: ``condition`` / ``elif_`` / ``else_``,
``parallel_for`` and ``exit_handler``.

Each is a context manager that opens a group of the graph (see :mod:`slipway.pipelines.graph`);
the tasks created inside belong to it. Conditions compare channels
(:class:`~slipway.pipelines.dsl.Channel`), known only when the pipeline runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from slipway.pipelines import types as ty
from slipway.pipelines.dsl import (
    Channel,
    Condition,
    ItemChannel,
    Task,
    _bind_in_scope,
    _builder,
    _group,
    _operand,
)
from slipway.pipelines.graph import GroupNode, PipelineDefinitionError, producer_of


def _as_condition(expr: Any, where: str) -> Condition:
    if isinstance(expr, Condition):
        return expr
    if isinstance(expr, bool):
        return Condition("==", {"constant": expr}, {"constant": True}, repr(expr))
    if isinstance(expr, Channel):
        if expr.param_type() not in (ty.BOOLEAN, ty.ANY):
            raise PipelineDefinitionError(
                f"{where}: {expr.describe()} is not a bool; compare it (for example `> 0.9`)"
            )
        return Condition("==", _operand(expr), {"constant": True}, expr.describe())
    raise PipelineDefinitionError(
        f"{where} takes a comparison of task outputs or parameters, got {expr!r}"
    )


@contextlib.contextmanager
def condition(expr: Any, name: str | None = None) -> Iterator[None]:
    """Run the tasks of the block only if ``expr`` holds when the pipeline runs (an ``if``);
    ``elif_`` and ``else_`` blocks may follow it directly."""
    builder = _builder("condition()")
    cond = _as_condition(expr, "condition()")
    group_id = builder.next_id("condition")
    node = GroupNode(
        group_id,
        "condition",
        builder.group,
        name or cond.text,
        conditions=[{"expr": cond.to_dict(), "want": True}],
    )
    parent = builder.group
    with _group(node):
        yield
    builder.chains[parent] = [cond]


@contextlib.contextmanager
def _branch(expr: Any, kind: str, name: str | None) -> Iterator[None]:
    builder = _builder(f"{kind}()")
    parent = builder.group
    chain = builder.chains.get(parent)
    if not chain:
        raise PipelineDefinitionError(f"{kind}() must follow a condition() or elif_() block")
    conditions = [{"expr": c.to_dict(), "want": False} for c in chain]
    cond = _as_condition(expr, f"{kind}()") if kind == "elif_" else None
    if cond is not None:
        conditions.append({"expr": cond.to_dict(), "want": True})
    label = name or (cond.text if cond is not None else "else")
    node = GroupNode(builder.next_id("condition"), "condition", parent, label, conditions)
    with _group(node):
        yield
    builder.chains[parent] = [*chain, cond] if cond is not None else []


def elif_(expr: Any, name: str | None = None) -> contextlib.AbstractContextManager[None]:
    """``elif``: runs when every earlier branch of the chain was false and ``expr`` holds."""
    return _branch(expr, "elif_", name)


def else_(name: str | None = None) -> contextlib.AbstractContextManager[None]:
    """``else``: runs when every earlier branch of the chain was false."""
    return _branch(None, "else_", name)


@contextlib.contextmanager
def parallel_for(
    items: Any, parallelism: int = 0, name: str | None = None
) -> Iterator[ItemChannel]:
    """Run the block once per item of ``items`` (a list, a list parameter, a task's list
    output, or an enclosing loop's item), at most ``parallelism`` iterations at once (0: no
    limit). Outputs made inside are gathered outside with :func:`collected`."""
    builder = _builder("parallel_for()")
    if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 0:
        raise PipelineDefinitionError(
            f"parallel_for(): parallelism must be an int >= 0, got {parallelism!r}"
        )
    item_type = ty.ANY
    if isinstance(items, Task):
        items = items.output
    if isinstance(items, Channel):
        if items.artifact_type() is not None or items.param_type() not in (ty.LIST, ty.ANY):
            raise PipelineDefinitionError(f"parallel_for(): {items.describe()} is not a list")
        binding = _bind_in_scope(items, "parallel_for()")
    elif isinstance(items, (list, tuple)):
        values = ty.check_value(list(items), ty.ParamType(ty.LIST), "parallel_for() items")
        kinds = {ty.type_of_value(v) for v in values}
        if len(kinds) == 1:
            item_type = kinds.pop()
        elif kinds == {ty.INTEGER, ty.DOUBLE}:
            item_type = ty.DOUBLE
        binding = {"constant": values}
    else:
        raise PipelineDefinitionError(
            f"parallel_for() takes a list, a list parameter or a task output, got {items!r}"
        )
    loop_id = builder.next_id("for-loop")
    node = GroupNode(
        loop_id,
        "loop",
        builder.group,
        name or "",
        items=binding,
        item_type=item_type,
        parallelism=parallelism,
    )
    with _group(node):
        yield ItemChannel(loop_id, item_type)


@contextlib.contextmanager
def exit_handler(exit_task: Task, name: str | None = None) -> Iterator[None]:
    """Run ``exit_task`` (created just before, outside the block) once every task of the block
    has finished, whether they succeeded or not; it may take a ``PipelineStatus`` parameter."""
    builder = _builder("exit_handler()")
    if not isinstance(exit_task, Task):
        raise PipelineDefinitionError(f"exit_handler() takes a task, got {exit_task!r}")
    node_task = builder.graph.tasks[exit_task.name]
    if node_task.group != builder.group:
        raise PipelineDefinitionError(
            f"exit_handler(): task {exit_task.name} must be created in the same block as the "
            "exit handler"
        )
    if builder.graph.exit_handler_of(exit_task.name) is not None:
        raise PipelineDefinitionError(f"task {exit_task.name} is already an exit task")
    used = [
        t.name
        for t in builder.graph.tasks.values()
        if any(producer_of(b) == exit_task.name for b in t.inputs.values())
    ]
    if used:
        raise PipelineDefinitionError(f"exit task {exit_task.name} feeds {used[0]}; it cannot")
    node = GroupNode(
        builder.next_id("exit-handler"),
        "exit_handler",
        builder.group,
        name or "",
        exit_task=exit_task.name,
    )
    with _group(node):
        yield
    if not builder.graph.tasks_in(node.id):
        raise PipelineDefinitionError(f"exit_handler(): the block of {exit_task.name} is empty")


__all__ = ["condition", "elif_", "else_", "exit_handler", "parallel_for"]
