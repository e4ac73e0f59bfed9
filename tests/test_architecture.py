"""The import graph agrees with the layers in the README's layout section.

Parsed from the source (no imports executed): every ``import`` of an lgrn module, resolved to the module it
names. Checked: no import circle, imports only go to the same or a lower layer, the extra rules between
packages of one layer, and no lgrn import hidden inside a function.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# The layers of docs and README ("Layout"): a module may import its own layer or a lower one.
LAYERS: dict[str, int] = {
    "lgrn._version": 0, "lgrn.atomic": 0, "lgrn.textio": 0, "lgrn.geometry": 0, "lgrn.config": 0, "lgrn.landmarks": 0,
    "lgrn.images": 0, "lgrn.drawing": 0,
    "lgrn.data": 1, "lgrn.models": 1, "lgrn.checkpoint": 1, "lgrn.losses": 1, "lgrn.metrics": 1,
    "lgrn.detect": 1, "lgrn.pretrained": 1, "lgrn.backends": 1, "lgrn.smoothing": 1,
    "lgrn.engine": 2, "lgrn.inference": 2, "lgrn.export": 2, "lgrn.predict": 2, "lgrn.serve": 2,
    "lgrn.output_formats": 2,
    "lgrn.bench": 3, "lgrn.cli": 3,
}
# Packages of layer 1 that stand alone: none of them imports another.
INDEPENDENT = ("lgrn.data", "lgrn.models", "lgrn.losses", "lgrn.metrics")
SERVING = ("lgrn.inference", "lgrn.export", "lgrn.predict", "lgrn.serve", "lgrn.output_formats")
# The package's lazy attributes (FaceAligner, build_model, load_model) keep `import lgrn` cheap on purpose.
LAZY_OK = {"lgrn"}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((SRC / "lgrn").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _target(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".")
            if not MODULES[module].name == "__init__.py":
                base = base[:-1]
            base = base[: len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in MODULES else prefix
                 for alias in node.names]
    out = []
    for name in names:
        if name != "lgrn" and not name.startswith("lgrn."):
            continue
        while name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        out.append(name)
    return out


def _edges() -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    edges: dict[str, set[str]] = {}
    nested = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = set()
        for node in tree.body:       # module level, including the bodies of module-level `if` / `try`
            if isinstance(node, (ast.If, ast.Try)):
                blocks = [node.body, node.orelse] + [h.body for h in getattr(node, "handlers", [])]
                top.update(id(sub) for block in blocks for sub in block)
            top.add(id(node))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = [t for t in _target(module, node) if t != module]
                edges.setdefault(module, set()).update(targets)
                if targets and id(node) not in top and module not in LAZY_OK:
                    nested.append((module, targets[0], node.lineno))
    return edges, nested


EDGES, NESTED = _edges()


def _layer(module: str) -> tuple[str, int] | None:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix, LAYERS[prefix]
    return None


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m != "lgrn" and _layer(m) is None] == []


def test_no_import_circle():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(EDGES.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert cycles == []


def test_imports_go_down_the_layers():
    wrong = []
    for module, targets in EDGES.items():
        if module == "lgrn":
            continue
        here = _layer(module)
        for target in targets:
            there = _layer(target)
            if target == "lgrn" or there is None:
                continue
            if there[1] > here[1]:
                wrong.append(f"{module} (layer {here[1]}) imports {target} (layer {there[1]})")
    assert wrong == []


@pytest.mark.parametrize("package", INDEPENDENT)
def test_layer_one_packages_stand_alone(package):
    others = [p for p in INDEPENDENT if p != package]
    wrong = [(m, t) for m, targets in EDGES.items() if _layer(m) and _layer(m)[0] == package
             for t in targets if _layer(t) and _layer(t)[0] in others]
    assert wrong == []


def test_serving_and_engine_stay_apart():
    wrong = []
    for module, targets in EDGES.items():
        prefix = _layer(module)[0] if _layer(module) else ""
        for target in targets:
            target_prefix = _layer(target)[0] if _layer(target) else ""
            if prefix in SERVING and target_prefix in ("lgrn.data", "lgrn.engine"):
                wrong.append((module, target))
            if prefix == "lgrn.engine" and target_prefix in SERVING and module != "lgrn.engine.demo_real":
                wrong.append((module, target))
    assert wrong == []


def test_model_building_does_not_read_the_config_layer():
    users = [m for m, targets in EDGES.items() if m.startswith("lgrn.models") and "lgrn.config" in targets]
    assert users in ([], ["lgrn.models.loading"]), users


def test_no_lgrn_import_inside_a_function():
    assert NESTED == []


def test_the_graph_is_parsed():
    # the checks above must see real edges: a parse that found nothing would pass them vacuously
    assert len(MODULES) > 60
    assert "lgrn.models" in EDGES["lgrn.engine.trainer"] or any(
        t.startswith("lgrn.models") for t in EDGES["lgrn.engine.trainer"])
