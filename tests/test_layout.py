"""The house rules, checked on the source: stage packages whose imports point down only, no import cycles, no
private names imported across packages, a CLI without pandas, and a clean ruff."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "icgen"
LAYERS = ("core", "sim", "data", "llm", "sizing", "eval")
"""Bottom to top: a stage may import its own package and the ones before it."""
SHELL = ("cli", "__init__", "__main__")
"""Above every stage: the command line and the public API."""
SHELL_PACKAGES = ("web",)
"""Shell packages beside the CLI, above every stage: the web page (`icgen serve`) may import any stage, none imports it."""


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, module: str | None = None) -> list[tuple[str, list[str], int]]:
    """(imported module, names, line) for every import in a module, function-level ones included, imports under
    `if TYPE_CHECKING:` left out (they never run). `module` names a file that stands in for another module."""
    tree = ast.parse(path.read_text())
    module = module or _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, [a.name for a in node.names], node.lineno))
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "icgen":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "shell"


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def internal_edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports."""
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for target, names, _ in imports_of(path, module):
            if target in modules:
                edges[module].add(target)
            for name in names:  # `from . import x` / `from .pkg import module`
                if f"{target}.{name}" in modules:
                    edges[module].add(f"{target}.{name}")
    return edges


def upward_imports(modules: dict[str, Path]) -> list[str]:
    """Imports from a stage to a stage above it, or to the shell."""
    upward = []
    for module, path in modules.items():
        mine = _layer(module)
        if mine == "shell":
            continue
        for target, _, line in imports_of(path, module):
            theirs = _layer(target)
            if theirs == "shell" and target != "icgen":
                upward.append(f"{module}:{line} imports {target}")
            elif theirs in LAYERS and LAYERS.index(theirs) > LAYERS.index(mine):
                upward.append(f"{module}:{line} imports {target} ({theirs} is above {mine})")
    return upward


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk meets."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return cycles


def test_every_stage_module_lives_in_a_stage_package():
    loose = [m for m in MODULES if _layer(m) == "shell" and m.split(".")[-1] not in SHELL and m != "icgen"
             and m.split(".")[1] not in SHELL_PACKAGES]
    assert not loose, f"modules outside the stage packages: {loose}"


def test_imports_point_down_the_stages_only():
    upward = upward_imports(MODULES)
    assert not upward, "\n".join(upward)


def test_there_is_no_import_cycle():
    cycles = find_cycles(internal_edges(MODULES))
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_name_is_imported_from_another_package():
    private = []
    for module, path in MODULES.items():
        package = module.rpartition(".")[0] if path.name != "__init__.py" else module
        for target, names, line in imports_of(path):
            if not target.startswith("icgen"):
                continue
            target_package = target if target in MODULES and MODULES[target].name == "__init__.py" \
                else target.rpartition(".")[0]
            for name in names:
                if name.startswith("_") and not name.startswith("__") and target_package != package:
                    private.append(f"{module}:{line} imports {name} from {target}")
    assert not private, "\n".join(private)


def test_starting_the_cli_loads_no_heavy_library():
    """`icgen --help` and `icgen tech list` must not pay for pandas, scipy, torch or the simulator."""
    probe = "import sys, icgen.cli; print(' '.join(sorted(m for m in sys.modules if '.' not in m)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    heavy = {"pandas", "pyarrow", "scipy", "torch", "transformers", "sklearn", "PySpice", "matplotlib", "numpy",
             "fastapi", "starlette", "uvicorn", "pydantic"}
    assert not heavy & set(loaded), sorted(heavy & set(loaded))


def test_the_cli_imports_neither_pandas_nor_pyarrow():
    heavy = [f"line {line}: {target}" for target, _, line in imports_of(PACKAGE / "cli.py")
             if target.split(".")[0] in ("pandas", "pyarrow")]
    assert not heavy, heavy


def test_the_checks_catch_an_upward_import_and_a_function_level_cycle(tmp_path):
    (tmp_path / "a.py").write_text("from ..sizing.loop import size\n")
    (tmp_path / "b.py").write_text("def f():\n    from .c import g\n")
    (tmp_path / "c.py").write_text("from .b import f\n")
    (tmp_path / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..eval.run import x\n")
    (tmp_path / "e.py").write_text("from ..web.app import create_app\n")
    fake = {f"icgen.core.{n}": tmp_path / f"{n}.py" for n in "abcde"}
    fake["icgen.sizing.loop"] = PACKAGE / "sizing" / "loop.py"
    assert upward_imports({k: v for k, v in fake.items() if k != "icgen.sizing.loop"}) == \
        ["icgen.core.a:1 imports icgen.sizing.loop (sizing is above core)", "icgen.core.e:1 imports icgen.web.app"]
    assert ["icgen.core.b", "icgen.core.c", "icgen.core.b"] in find_cycles(internal_edges(fake))


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed; it is part of the test extra (pip install -e '.[test]')")
    result = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_web_package_sits_in_the_shell_and_the_cli_imports_it_only_inside_serve():
    web = [m for m in MODULES if m.startswith("icgen.web.")]
    assert "icgen.web.app" in web and all(_layer(m) == "shell" for m in web)
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert not [n for n in top_level if "web" in (getattr(n, "module", "") or "")]
    serve = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "serve_command")
    inside = {n.module for n in ast.walk(serve) if isinstance(n, ast.ImportFrom)}
    assert {"web.config", "web.server"} <= inside
