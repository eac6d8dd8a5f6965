"""The package's layout (issue 15): folders that show the pipeline, imports that run one way, no import cycle.

The import graph is built from the source with ``ast``, counting every import
statement, those inside functions included (they run too, only later).
``from package import name`` is an edge to ``package.name`` where that is a
module, else to ``package``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent / "hrgraph"

#: The pipeline's order: a folder may import its own modules and those of
#: folders with a smaller rank, never one with a larger rank.  Siblings of one
#: rank (edit, draw, io, generate) may import one another.
RANKS = {
    "errors": 0, "files": 0, "_version": 0,
    "spec": 1,
    "build": 2,
    "edit": 3, "draw": 3, "io": 3, "generate": 3,
    "train": 4,
    "analysis": 5,
    "cli": 6,
    "__main__": 7,
}


def _modules() -> dict[str, tuple[Path, bool]]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.with_suffix("").relative_to(ROOT.parent).parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


def import_graph() -> nx.DiGraph:
    """Module -> module imports within hrgraph; each edge carries the file and line of one import."""
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)

    def known(name: str) -> str:
        while name not in modules:
            name = name.rsplit(".", 1)[0]
        return name

    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [known(a.name) for a in node.names if a.name.split(".")[0] == "hrgraph"]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != "hrgraph":
                    continue
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else known(source) for a in node.names]
            for target in targets:
                if target != name:
                    graph.add_edge(name, target, where=f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    return graph


def _folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_import_cycle():
    graph = import_graph()
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    if cycles:
        cycle = nx.find_cycle(graph.subgraph(cycles[0]))
        steps = [f"{a} -> {b} ({graph.edges[a, b]['where']})" for a, b in cycle]
        pytest.fail("import cycle:\n  " + "\n  ".join(steps))


def test_imports_run_one_way_between_folders():
    wrong = []
    for a, b, data in import_graph().edges(data=True):
        fa, fb = _folder(a), _folder(b)
        if fa is None:
            continue  # hrgraph/__init__ and __main__: the public API gathers from everywhere
        if fb is None:
            wrong.append(f"{data['where']}: {a} imports the package root (import the module it needs)")
        elif RANKS[fb] > RANKS[fa]:
            wrong.append(f"{data['where']}: {a} ({fa}, stage {RANKS[fa]}) imports {b} ({fb}, stage {RANKS[fb]})")
    assert not wrong, "\n".join(wrong)


def test_every_folder_has_a_stage():
    folders = {_folder(m) for m in _modules()} - {None}
    assert folders <= set(RANKS), f"add {sorted(folders - set(RANKS))} to RANKS (and to the README's Layout)"


def test_the_tree_shows_the_pipeline():
    top = [p.name for p in ROOT.glob("*.py")]
    packages = [p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()]
    assert len(top) <= 8, top
    assert len(packages) >= 5, packages
    sizes = {str(p.relative_to(ROOT.parent)): len(p.read_text(encoding="utf-8").splitlines()) for p in ROOT.rglob("*.py")}
    assert max(sizes.values()) <= 700, {k: v for k, v in sizes.items() if v > 700}


def test_a_long_module_says_why():
    # Past about 500 lines a module says at its top why it is one module.
    unexplained = []
    for path in ROOT.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 500 and "Why one module" not in text[:4000]:
            unexplained.append(f"{path.relative_to(ROOT.parent)} ({len(text.splitlines())} lines)")
    assert not unexplained, unexplained


def test_the_checker_sees_cycles_inside_functions(tmp_path, monkeypatch):
    # The test must be able to fail: a function-level import that closes a loop is a cycle.
    package = tmp_path / "hrgraph"
    (package / "spec").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "spec" / "__init__.py").write_text("")
    (package / "spec" / "a.py").write_text("from . import b\n")
    (package / "spec" / "b.py").write_text("def f():\n    from .a import x\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", package)
    graph = import_graph()
    assert ("hrgraph.spec.a", "hrgraph.spec.b") in graph.edges and ("hrgraph.spec.b", "hrgraph.spec.a") in graph.edges
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycle()


def test_no_source_file_is_ignored_by_git():
    # A '.gitignore' line such as 'build/' once hid hrgraph/build/__init__.py: the
    # package worked here and was missing from every clone.
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT.parent / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(ROOT.parent)) for p in ROOT.rglob("*.py")]
    found = subprocess.run(["git", "check-ignore", "--no-index", *files], cwd=ROOT.parent, capture_output=True, text=True)
    assert found.stdout.strip() == "", f"ignored by .gitignore: {found.stdout.split()}"
