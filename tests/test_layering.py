"""Who may import whom, checked by walking the package's import statements."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "slipway"
HEAVY = {"torch", "ray", "onnxruntime", "xgboost", "lightgbm", "boto3", "mlflow"}


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(sub: str) -> list[Path]:
    return (
        sorted((PACKAGE / sub).rglob("*.py"))
        if (PACKAGE / sub).is_dir()
        else [PACKAGE / f"{sub}.py"]
    )


def test_entities_and_exceptions_import_only_the_standard_library() -> None:
    for path in [*_modules("entities"), *_modules("exceptions")]:
        for name in _imports(path, top_level_only=False):
            top = name.split(".")[0]
            assert top in {
                "__future__",
                "abc",
                "dataclasses",
                "enum",
                "math",
                "typing",
                "collections",
                "slipway",
            }, f"{path.name} imports {name}"
            if top == "slipway":
                assert name.startswith(("slipway.entities", "slipway.exceptions")), name


def test_store_interface_imports_no_sqlalchemy_or_http() -> None:
    names = _imports(PACKAGE / "tracking" / "store" / "base.py", top_level_only=False)
    assert not {
        n for n in names if n.split(".")[0] in {"sqlalchemy", "requests", "httpx", "fastapi"}
    }


def test_nothing_imports_the_server() -> None:
    # The server sits on top: only the server package, the web UI it serves (pages over the
    # server's context), and the `slipway server` and `slipway ui` commands, entry points that
    # start it, may import it.
    entry_points = {Path("cli/server.py"), Path("cli/ui.py")}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in {"server", "ui"} or rel in entry_points:
            continue
        assert not any(n.startswith("slipway.server") for n in _imports(path, False)), path


def test_heavy_dependencies_are_imported_inside_functions() -> None:
    for path in PACKAGE.rglob("*.py"):
        top = {n.split(".")[0] for n in _imports(path, top_level_only=True)}
        assert not top & HEAVY, f"{path.relative_to(PACKAGE)} imports {top & HEAVY} at import time"
