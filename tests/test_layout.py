"""The package layout the bundle keeps (docs/design.md, "Code layout"): small modules and functions, absolute imports,
no import cycles, and runtime code that never depends on the studies or the tools."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import BUNDLE_ROOT

SCRIPTS = BUNDLE_ROOT / "scripts"
#: packages with code only research or release work runs; nothing else may import them
RESEARCH = ("scripts.studies", "scripts.tools")
MAX_MODULE_LINES = 620
MAX_FUNCTION_CODE_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SCRIPTS.rglob("*.py")):
        parts = path.relative_to(BUNDLE_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(path: Path, module_level_only: bool) -> list[ast.AST]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    return [n for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom))]


def _targets(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    # "from scripts.x import y" names module scripts.x.y when that is a module, else scripts.x
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def test_the_package_has_the_stages_a_newcomer_looks_for():
    for stage in ("io", "quantification", "pipeline", "quality", "normative", "reporting", "evaluation", "transforms"):
        assert (SCRIPTS / stage / "__init__.py").is_file(), stage
    assert (SCRIPTS / "studies").is_dir() and (SCRIPTS / "tools").is_dir()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_small(name):
    lines = MODULES[name].read_text().count("\n")
    assert lines <= MAX_MODULE_LINES, f"{MODULES[name]}: {lines} lines; split it by concept"


def _code_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]  # the docstring documents, it does not add logic
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


def test_functions_are_short():
    long = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _code_lines(node)
                if n > MAX_FUNCTION_CODE_LINES:
                    long.append(f"{path.relative_to(BUNDLE_ROOT)}:{node.lineno} {node.name} ({n} lines of code)")
    assert not long, "functions over 80 lines of code:\n" + "\n".join(long)


def test_imports_are_absolute():
    relative = [
        f"{path.relative_to(BUNDLE_ROOT)}:{n.lineno}"
        for path in MODULES.values()
        for n in _imports(path, module_level_only=False)
        if isinstance(n, ast.ImportFrom) and n.level
    ]
    assert not relative, relative


def test_runtime_code_never_imports_studies_or_tools():
    bad = []
    for name, path in MODULES.items():
        if name.startswith(RESEARCH):
            continue
        for node in _imports(path, module_level_only=False):
            bad += [f"{name} imports {t}" for t in _targets(node) if t.startswith(RESEARCH)]
    assert not bad, bad


def test_no_import_cycles():
    graph = {
        name: {t for n in _imports(path, module_level_only=True) for t in _targets(n) if t in MODULES and t != name}
        for name, path in MODULES.items()
    }
    # a package's __init__ importing its own modules is how packages work, not a cycle
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles
