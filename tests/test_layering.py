"""The package's layering (README, "Layers"): nothing imports upward, no cycles between packages."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "robo_policies"

LAYERS = [
    {"utils"},
    {"data", "nets"},
    {"heads"},
    {"policy"},
    {"sampling", "envs"},
    {"train", "rl", "robots"},
    {"checkpoints"},
    {"commands"},
    {"cli"},
    {"__main__"},
]
"""Bottom to top. A module may import its own top-level package and any lower layer; within a
layer, packages do not import each other."""

RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def top_level(module: str) -> str:
    """``robo_policies.rl.finetune`` -> ``rl``; ``robo_policies.policy`` -> ``policy``."""
    return module.split(".")[1]


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported robo_policies module, line) for every import outside ``if TYPE_CHECKING:``."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    type_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                 and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                 for statement in block.body for node in ast.walk(statement)}
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] if node.module else [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(name, node.lineno) for name in names
                  if name.startswith("robo_policies.") and name.count(".") >= 1]
    return found


def all_imports() -> list[tuple[str, str, int]]:
    """(importing top-level package, imported top-level package, "file:line")."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = top_level(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for name, line in imports_of(path):
            edges.append((source, top_level(name), f"{path.relative_to(PACKAGE.parent)}:{line}"))
    return edges


def test_every_top_level_package_has_a_layer():
    names = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()
             if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()}
    assert names == set(RANK), f"give new packages a layer here and in the README: {names ^ set(RANK)}"


def test_no_module_imports_an_upper_layer_or_a_sibling_package():
    wrong = [f"{where}: {source} -> {target}" for source, target, where in all_imports()
             if source != target and RANK[target] >= RANK[source]]
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_import_graph_between_packages_has_no_cycle():
    graph: dict[str, set[str]] = {}
    for source, target, _ in all_imports():
        if source != target:
            graph.setdefault(source, set()).add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = [package for package in graph if reaches(package, package, {package})]
    assert not cycles, f"packages on an import cycle: {sorted(cycles)}"


@pytest.mark.parametrize("source", ["from robo_policies.commands import evaluate\n",
                                    "if TYPE_CHECKING:\n    from robo_policies.commands import x\n"])
def test_the_walk_sees_imports_but_not_type_only_ones(tmp_path, source):
    # The checker itself can fail: a plain upward import is seen, a TYPE_CHECKING one is not.
    path = PACKAGE / "rl" / "_layering_probe.py"
    path.write_text("from typing import TYPE_CHECKING\n" + source)
    try:
        upward = [edge for edge in all_imports() if edge[2].startswith("robo_policies/rl/_layering_probe.py")]
    finally:
        path.unlink()
    assert [edge[:2] for edge in upward] == ([] if "TYPE_CHECKING:" in source else [("rl", "commands")])
