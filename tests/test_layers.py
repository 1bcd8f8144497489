"""The package's import graph: no circle, and no import that runs upward (a lower layer
importing a higher one). The layers are those of docs/design.md."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fastmf"

# Lowest first; a module may import modules of its own layer or below. Estimator modules
# share a layer but must not import one another.
LAYERS = [
    {"fastmf._version", "fastmf.kernels", "fastmf.kernels._cache", "fastmf.kernels._gram",
     "fastmf.kernels._jit",
     "fastmf.kernels._prefetch", "fastmf.kernels._pass", "fastmf.kernels._cholesky",
     "fastmf.kernels.als",
     "fastmf.kernels.gibbs", "fastmf.kernels.objective", "fastmf.kernels.topn",
     "fastmf.kernels.implicit", "fastmf.kernels.sgd", "fastmf.kernels.sparse"},
    {"fastmf._params", "fastmf._registry", "fastmf._threads", "fastmf.ratings"},
    {"fastmf._solver", "fastmf._driver", "fastmf.metrics", "fastmf.io", "fastmf.datasets",
     "fastmf.persist"},
    {"fastmf.base", "fastmf.model_selection", "fastmf.baseline"},
    {"fastmf.model", "fastmf.bayes", "fastmf.implicit", "fastmf.sgd"},
    {"fastmf.distributed", "fastmf.plot"},
    {"fastmf"},
    {"fastmf.cli", "fastmf.__main__"},
]
ESTIMATORS = LAYERS[4]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out[name] = path
    return out


def _graph():
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fastmf"):
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    deps.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("fastmf")}
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _layer(name):
    for k, layer in enumerate(LAYERS):
        if name in layer:
            return k
    raise AssertionError(f"{name} is in no layer of tests/test_layers.py: place it")


def test_every_module_has_a_layer():
    for name in _graph():
        _layer(name)


def test_no_import_runs_upward_and_estimators_are_independent():
    bad = [(m, d) for m, deps in _graph().items() for d in deps
           if _layer(d) > _layer(m) or (m in ESTIMATORS and d in ESTIMATORS)]
    assert bad == []


def test_no_import_circle():
    graph = _graph()
    seen, stack, cycles = set(), [], []

    def visit(v):
        seen.add(v)
        stack.append(v)
        for w in graph[v]:
            if w in stack:
                cycles.append(stack[stack.index(w):] + [w])
            elif w not in seen:
                visit(w)
        stack.pop()

    for v in graph:
        if v not in seen:
            visit(v)
    assert cycles == []
