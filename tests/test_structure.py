"""The shape of the code: small files, and imports between packages that point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "resnetlab"
MAX_LINES = 400  # STYLE.md: "a file over ~400 lines ... is a sign to look again"


def sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def package_of(path: Path) -> str:
    """``train`` for ``train/loop.py``; a module at the top (``errors.py``) is its own package."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return "resnetlab" if parts == ("__init__",) else parts[0]


def imported_packages(path: Path) -> set[str]:
    """The resnetlab packages a file imports, at the top or inside functions (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "resnetlab":  # from resnetlab import train -> the package train
                names = [f"resnetlab.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "resnetlab":
                found.add(parts[1] if len(parts) > 1 and _is_package(parts[1]) else "resnetlab")
    return found


def _is_package(name: str) -> bool:
    return (SRC / name).is_dir() or (SRC / f"{name}.py").is_file()


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sources():
        own = package_of(path)
        graph.setdefault(own, set()).update(imported_packages(path) - {own})
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, str] = {}  # "open" while on the DFS stack, "done" after

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_source_file_passes_400_lines(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(SRC)} has {lines} lines (at most {MAX_LINES})"


def test_no_import_cycle_between_packages():
    cycle = find_cycle(package_graph())
    assert cycle is None, "packages import each other: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"x": {"y"}, "y": {"y2"}, "y2": {"y"}}) == ["y", "y2", "y"]


def test_the_graph_sees_lazy_and_package_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from resnetlab.train.loop import fit\n"
        "def f():\n    from resnetlab import data\n    import resnetlab.models.registry\n"
    )
    assert imported_packages(module) == {"train", "data", "models"}


def test_the_readme_layout_names_every_source_file():
    readme = (SRC.parents[1] / "README.md").read_text(encoding="utf-8")
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    named = {line.split()[0] for line in layout.splitlines() if line.startswith("  ")}
    missing = [str(p.relative_to(SRC)) for p in sources()]
    missing = [name for name in missing if name not in named and not name.endswith("__init__.py")]
    assert missing == [], f"README's Layout does not name {missing}"


def module_of(path: Path) -> str:
    """``train.loop`` for ``train/loop.py``."""
    return ".".join(path.relative_to(SRC).with_suffix("").parts)


def imported_modules(path: Path) -> set[str]:
    """The resnetlab modules (files, not packages' ``__init__``) a file imports, lazy ones too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            base = node.module.split(".")
            candidates = [[*base, alias.name] for alias in node.names] + [base]
        elif isinstance(node, ast.Import):
            candidates = [alias.name.split(".") for alias in node.names]
        else:
            continue
        for parts in candidates:
            if parts[0] == "resnetlab" and (SRC.joinpath(*parts[1:]).with_suffix(".py")).is_file():
                found.add(".".join(parts[1:]))
    return found


def test_no_import_cycle_between_files():
    graph = {
        module_of(path): imported_modules(path) - {module_of(path)}
        for path in sources()
        if path.name != "__init__.py"  # a package's front door re-exports its own files
    }
    cycle = find_cycle(graph)
    assert cycle is None, "files import each other: " + " -> ".join(cycle)


def test_the_file_graph_sees_a_lazy_import_of_a_file(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from resnetlab.data.folder import load_folder\n")
    assert imported_modules(module) == {"data.folder"}


def test_every_image_the_docs_show_is_in_the_repository_with_an_alt_text():
    """README.md and RESULTS.md show figures from docs/: each file exists, decodes as a PNG with
    a size, and its Markdown image has an alt text that says what it shows."""
    import re

    from PIL import Image

    root = SRC.parents[1]
    shown = []
    for name in ("README.md", "RESULTS.md"):
        shown += re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", (root / name).read_text(encoding="utf-8"))
    for alt, target in shown:
        assert len(alt.split()) >= 5, f"the image {target} has no alt text worth the name: {alt!r}"
        path = root / target
        assert path.is_file(), f"{target} is shown but not in the repository"
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100, target
