"""The package's parts import each other one way only; scripts and the notebook use the package, not each other."""

from __future__ import annotations

import ast
import json
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(source: str) -> list[str]:
    """Every absolute module an ``import`` or ``from ... import`` names, at any depth (lazy imports count)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def part_graph() -> dict[str, set[str]]:
    """Top-level part of xanesnet (``pipeline``, ``analysis``, ...) -> the other parts it imports."""
    graph: dict[str, set[str]] = defaultdict(set)
    for f in (ROOT / "xanesnet").rglob("*.py"):
        parts = f.relative_to(ROOT / "xanesnet").with_suffix("").parts
        if parts == ("__init__",):
            continue
        me = parts[0]
        for mod in imported_modules(f.read_text()):
            bits = mod.split(".")
            if bits[0] == "xanesnet" and len(bits) > 1 and bits[1] != me:
                graph[me].add(bits[1])
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of parts (first repeated at the end), or ``None``."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (cycle := visit(w)):
                return cycle
        state[v] = 2
        path.pop()
        return None

    for v in sorted(graph):
        if v not in state and (cycle := visit(v)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_import_cycle_between_the_parts_of_xanesnet():
    graph = part_graph()
    assert "pipeline" in graph and "cli" in graph  # the walk saw the package
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_featurisation_path_does_not_import_torch_or_the_workflows():
    graph = part_graph()
    for part in ("io", "descriptors", "spectra", "settings", "errors", "atomic"):
        reached, todo = set(), [part]
        while todo:
            for w in graph.get(todo.pop(), ()):
                if w not in reached:
                    reached.add(w)
                    todo.append(w)
        assert not reached & {"models", "training", "pipeline", "predict", "cli"}, (part, reached)


def test_tests_scripts_and_notebooks_do_not_import_scripts_helpers():
    """Shared experiment code lives in xanesnet.experiments; nothing imports the old scripts/fe_data helper."""
    sources = [f.read_text() for d in ("tests", "scripts") for f in (ROOT / d).glob("*.py")]
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        sources += ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    assert not (ROOT / "scripts" / "fe_data.py").exists()
    import re

    helper = re.compile(r"\b(from\s+fe_data\s+import|import\s+fe_data\b)")
    assert not any(helper.search(s) for s in sources)


def test_tests_and_notebooks_import_nothing_from_scripts():
    """What tests and the notebook need lives in the package: no module of scripts/ is imported by them."""
    import re

    stems = "|".join(sorted(p.stem for p in (ROOT / "scripts").glob("*.py")))
    script_import = re.compile(rf"^\s*(from\s+({stems})\s+import|import\s+({stems})\b)", re.M)
    sources = {f.name: f.read_text() for f in (ROOT / "tests").glob("*.py")}
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        sources[nb.name] = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
    offenders = {name: m.group(0).strip() for name, text in sources.items() if (m := script_import.search(text))}
    assert not offenders, offenders
