"""The import graph of rl4rec_core, tasks and flows: no cycle, and every import points down the layers.

Every ``import`` / ``from ... import`` statement counts, at any depth (lazy imports inside functions and
``TYPE_CHECKING`` blocks included), parsed with ``ast``. ``from pkg import name`` is an import of the
submodule ``pkg.name`` when there is one, else of ``pkg`` itself. The layer order below is the one
docs/architecture.md shows (checked here too); a module may import its own layer's modules (without a
cycle) and lower layers only. The two packages of the layer ``training | evaluation`` import neither each other.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rl4rec_core", "tasks", "flows")
# lowest first: (layer, the modules or packages in it)
LAYERS = [
    ("base", ("rl4rec_core", "rl4rec_core.errors", "rl4rec_core.io", "rl4rec_core.dataset_list", "rl4rec_core.paths",
              "rl4rec_core.settings", "rl4rec_core.devices", "rl4rec_core.integrity", "rl4rec_core.metrics",
              "rl4rec_core.checkpoints", "rl4rec_core.ray_access", "rl4rec_core.state_checks",
              "rl4rec_core.write_errors", "rl4rec_core.env_allowlist")),
    ("assets", ("rl4rec_core.assets",)),
    ("data", ("rl4rec_core.data",)),
    ("embeddings", ("rl4rec_core.embeddings",)),
    ("recommenders", ("rl4rec_core.recommenders",)),
    ("retrieval", ("rl4rec_core.retrieval",)),
    ("policy", ("rl4rec_core.policy",)),
    ("training | evaluation", ("rl4rec_core.training", "rl4rec_core.evaluation")),
    ("cli", ("rl4rec_core.cli",)),
    ("entry point", ("rl4rec_core.__main__",)),
    ("tasks", ("tasks",)),
    ("flows", ("flows",)),
]


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (its own package's ``__init__`` by a relative import included)."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")[: len(name.split(".")) - (0 if is_pkg else 1) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> tuple[int, str]:
    """``(rank, entry)`` of the longest layer entry that is ``module`` or a package above it."""
    best = max(((rank, entry) for rank, (_, entries) in enumerate(LAYERS) for entry in entries
                if module == entry or module.startswith(entry + ".")), key=lambda x: len(x[1]), default=None)
    assert best is not None, f"{module} is in no layer: add it to LAYERS (and docs/architecture.md)"
    return best


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_found():
    assert len(MODULES) > 100 and GRAPH["flows.pipeline"], "expected the packages' modules and their imports"


def test_no_import_cycle():
    assert _cycles() == [], "import cycles (move what both need to a module below them)"


def test_every_import_points_down_the_layers():
    wrong = []
    for module, targets in GRAPH.items():
        rank, entry = _layer(module)
        for target in targets:
            t_rank, t_entry = _layer(target)
            if t_rank > rank or (t_rank == rank and t_entry != entry and "|" in LAYERS[rank][0]):
                wrong.append(f"{module} ({LAYERS[rank][0]}) -> {target} ({LAYERS[t_rank][0]})")
    assert not wrong, "imports into a higher layer (or between the packages of one layer):\n" + "\n".join(sorted(wrong))


def test_the_core_imports_neither_prefect_nor_mlflow():
    bad = []
    for name, path in MODULES.items():
        if not name.startswith("rl4rec_core"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [f"{name}: {n}" for n in names if n.split(".")[0] in ("prefect", "prefect_ray", "mlflow")]
    assert not bad, bad


def render_layers() -> str:
    """The layer table docs/architecture.md shows, highest first."""
    rows = []
    for rank, (layer, entries) in reversed(list(enumerate(LAYERS))):
        rows.append(f"{rank + 1:>2}  {layer:<22} {' '.join(e for e in entries)}")
    return "\n".join(rows)


def test_docs_show_this_layer_order():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert render_layers() in doc, "docs/architecture.md's layer table differs; paste render_layers() there:\n" + (
        render_layers())


def test_a_layer_entry_names_real_modules():
    missing = [e for _, entries in LAYERS for e in entries if e not in MODULES]
    assert not missing, missing


def test_every_module_is_in_a_layer():
    counts = defaultdict(int)
    for module in MODULES:
        counts[LAYERS[_layer(module)[0]][0]] += 1
    assert all(counts[layer] for layer, _ in LAYERS), counts
