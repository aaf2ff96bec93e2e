"""Layering: lower layers of estlab never import higher ones, and no cycles.

The import graph is read with ``ast`` from estlab/**/*.py (imports inside
functions and ``if TYPE_CHECKING`` blocks count too; relative imports are
resolved). The layer order is written once, in ``_LAYERS`` (a new module
joins a row); ``_FORBIDDEN`` adds rules stricter than the order;
``test_no_import_cycles`` checks the whole graph has no cycle.
"""
import ast
import dataclasses
import fnmatch
import json
import pathlib
import subprocess
import sys

import pytest

_ROOT = pathlib.Path(__file__).resolve().parent.parent
_PACKAGE = _ROOT / "estlab"


@dataclasses.dataclass(frozen=True)
class _Rule:
  """Modules matching ``sources`` (minus ``exempt``) import none of ``forbidden``.

  Patterns are fnmatch globs on .py paths relative to the repository root
  (fnmatch's ``*`` also crosses ``/``, so ``estlab/inputs/*`` is the subtree).
  ``forbidden`` are module names; a name forbids the module and its children.
  ``allowed`` are module names carved out of ``forbidden``.
  ``forbidden_exact`` are module names forbidden without their children
  (``estlab``: the root package's ``__init__``, not ``estlab.spec``).
  ``optional``: the sources may not exist yet (a package still to come).
  """
  name: str
  sources: tuple
  forbidden: tuple
  exempt: tuple = ()
  allowed: tuple = ()
  forbidden_exact: tuple = ()
  optional: bool = False


# The layer order, written once, bottom first. A module imports only modules
# of its own layer or of a layer below; within a layer, imports must not
# form a cycle (``test_no_import_cycles``). A module belongs to the layer of
# the longest prefix naming it. The data flow reads upwards: the input path
# and the model's pieces, the engine that runs them, checkpoints, export, the
# Estimator that orchestrates them, what is built on it, and the UIs.
_LAYERS = (
    ("the model_fn contract", ("estlab._version", "estlab.spec",
                               "estlab.metrics", "estlab._export_outputs")),
    ("services", ("estlab.summary", "estlab.hooks", "estlab.distribute",
                  "estlab.run_config", "estlab._profiler_hook")),
    ("the input path", ("estlab.data", "estlab.inputs")),
    ("the model's pieces", ("estlab.feature_column", "estlab.heads")),
    ("the engine", ("estlab._engine",)),
    ("checkpoints", ("estlab.checkpoint", "estlab.inspect",
                     "estlab.warm_starting")),
    # tf.estimator's hooks that save checkpoints and events (the hook
    # protocol the engine calls is estlab.hooks, in "services").
    ("tf.estimator's hooks", ("estlab._tf_hooks",)),
    ("export", ("estlab.export",)),
    ("the estimator", ("estlab.estimator",)),
    ("built on the estimator", ("estlab.premade", "estlab.training",
                                "estlab.extenders", "estlab.experimental",
                                "estlab.keras")),
    ("the public surface", ("estlab",)),
    ("tf.compat.v1's names", ("estlab.compat",)),
    ("user interfaces", ("estlab.widgets", "estlab.demo", "estlab.cli",
                         "estlab.__main__")),
)


def _layer_of(module: str) -> int:
  best, found = -1, None
  for index, (_, prefixes) in enumerate(_LAYERS):
    for prefix in prefixes:
      # The root package is its __init__ only: every module is under it.
      matches = module == prefix if prefix == "estlab" else _under(module, prefix)
      if matches and len(prefix) > best:
        best, found = len(prefix), index
  return found



# Rules stricter than the layer order: what a package may import even from
# the layers below it.
_FORBIDDEN = [
    _Rule("inputs know nothing of the rest of estlab but data",
          sources=("estlab/inputs/*",),
          forbidden=("estlab",), allowed=("estlab.inputs", "estlab.data")),
    _Rule("data knows nothing of the rest of estlab (nor of estimators)",
          sources=("estlab/data/*",),
          # estlab.spec: ModeKeys, the model_fn contract's mode strings.
          forbidden=("estlab",), allowed=("estlab.data", "estlab.spec")),
    _Rule("feature columns know nothing of the rest of estlab",
          sources=("estlab/feature_column/*",),
          forbidden=("estlab",), allowed=("estlab.feature_column",)),
    _Rule("heads know only the model_fn contract",
          sources=("estlab/heads/*",),
          forbidden=("estlab",),
          allowed=("estlab.heads", "estlab.spec", "estlab.metrics",
                   "estlab._export_outputs")),
    # The exporter reads an estimator through ``export._servable.Servable``.
    _Rule("export does not import the estimator, premade or the root package",
          sources=("estlab/export/*",),
          forbidden=("estlab.estimator", "estlab.premade"),
          forbidden_exact=("estlab",)),
]

# Statements that must not load heavy libraries (run in a fresh interpreter).
_LIGHT_IMPORTS = [
    ("import estlab", ("jax", "flax", "optax", "orbax", "keras")),
    # estlab.keras imports Keras when model_to_estimator runs.
    ("import estlab.keras", ("keras", "tensorflow")),
    # The Estimator lists step directories on import; Orbax loads on use.
    ("from estlab.checkpoint._step_dirs import local_steps",
     ("jax", "flax", "optax", "orbax")),
]


def _module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(_ROOT).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def _is_package(path: pathlib.Path) -> bool:
  return path.name == "__init__.py"


def _lazy_exports() -> dict:
  """``estlab.__init__``'s name -> module table, so ``from estlab import X`` resolves."""
  tree = ast.parse((_PACKAGE / "__init__.py").read_text())
  for node in tree.body:
    targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
    if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets):
      return ast.literal_eval(node.value)
  return {}


def _known_modules() -> set:
  return {_module_name(p) for p in _PACKAGE.rglob("*.py")}


def _resolve_relative(path: pathlib.Path, level: int, module: str | None) -> str:
  base = _module_name(path).split(".")
  if not _is_package(path):
    base = base[:-1]  # a module's relative imports start from its package
  if level > 1:
    base = base[:len(base) - (level - 1)]
  return ".".join(base + ([module] if module else []))


def _imports(path: pathlib.Path, known: set, exports: dict) -> set:
  """``(module, line)`` for each import in ``path``, as absolute names."""
  found = set()
  tree = ast.parse(path.read_text(), filename=str(path))
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found.update((alias.name, node.lineno) for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = (_resolve_relative(path, node.level, node.module) if node.level
              else node.module)
      for alias in node.names:
        candidate = f"{base}.{alias.name}"
        if candidate in known:  # ``from estlab import cli``: a submodule
          found.add((candidate, node.lineno))
        elif base == "estlab" and alias.name in exports:  # lazy public name
          found.add((exports[alias.name], node.lineno))
        else:
          found.add((base, node.lineno))
    elif _is_import_module_call(node):  # importlib.import_module("estlab.x")
      found.add((node.args[0].value, node.lineno))
  return found


def _is_import_module_call(node: ast.AST) -> bool:
  if not (isinstance(node, ast.Call) and node.args and
          isinstance(node.args[0], ast.Constant) and
          isinstance(node.args[0].value, str)):
    return False
  func = node.func
  name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
  return name == "import_module" and not node.args[0].value.startswith(".")


def _under(module: str, prefix: str) -> bool:
  return module == prefix or module.startswith(prefix + ".")


def _sources(rule: _Rule) -> list:
  paths = []
  for path in sorted(_PACKAGE.rglob("*.py")):
    rel = path.relative_to(_ROOT).as_posix()
    if (any(fnmatch.fnmatch(rel, p) for p in rule.sources) and
        not any(fnmatch.fnmatch(rel, p) for p in rule.exempt)):
      paths.append(path)
  return paths


def _violations(rule: _Rule) -> list:
  known, exports = _known_modules(), _lazy_exports()
  bad = []
  for path in _sources(rule):
    for module, line in sorted(_imports(path, known, exports),
                               key=lambda item: (item[1], item[0])):
      if ((any(_under(module, f) for f in rule.forbidden) or
           module in rule.forbidden_exact) and
          not any(_under(module, a) for a in rule.allowed)):
        bad.append(f"{path.relative_to(_ROOT).as_posix()}:{line} imports {module}")
  return bad


@pytest.mark.parametrize("rule", _FORBIDDEN, ids=lambda r: r.name)
def test_layers_import_only_downwards(rule):
  if not rule.optional:
    assert _sources(rule), f"rule {rule.name!r} matches no file: fix its globs"
  assert _violations(rule) == [], rule.name


def _import_graph() -> dict:
  """``{module: {imported estlab module: (path, line) of the first import}}``.

  A package is its ``__init__``; an import of a name inside a module is an
  import of that module (the longest known prefix of the name).
  """
  known, exports = _known_modules(), _lazy_exports()
  graph = {}
  for path in sorted(_PACKAGE.rglob("*.py")):
    source = _module_name(path)
    edges = graph.setdefault(source, {})
    for module, line in sorted(_imports(path, known, exports),
                               key=lambda item: (item[1], item[0])):
      parts = module.split(".")
      while parts and ".".join(parts) not in known:
        parts.pop()
      target = ".".join(parts)
      if target and target != source and target not in edges:
        edges[target] = (path.relative_to(_ROOT).as_posix(), line)
  return graph


def _cycles(graph: dict) -> list:
  """The strongly connected components of more than one module, sorted
  (Tarjan's algorithm, iterative)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []
  for root in sorted(graph):
    if root in index:
      continue
    work = [(root, iter(sorted(graph[root])))]
    index[root] = low[root] = len(index)
    stack.append(root)
    on_stack.add(root)
    while work:
      node, children = work[-1]
      child = next(children, None)
      if child is not None:
        if child not in index:
          index[child] = low[child] = len(index)
          stack.append(child)
          on_stack.add(child)
          work.append((child, iter(sorted(graph.get(child, ())))))
        elif child in on_stack:
          low[node] = min(low[node], index[child])
        continue
      work.pop()
      if work:
        low[work[-1][0]] = min(low[work[-1][0]], low[node])
      if low[node] == index[node]:
        component = []
        while True:
          member = stack.pop()
          on_stack.discard(member)
          component.append(member)
          if member == node:
            break
        if len(component) > 1:
          found.append(sorted(component))
  return sorted(found)


def _describe_cycle(graph: dict, component: list) -> str:
  inside = set(component)
  edges = sorted((path, line, target) for source in component
                 for target, (path, line) in graph[source].items()
                 if target in inside)
  lines = [f"    {path}:{line} imports {target}" for path, line, target in edges]
  return "  " + ", ".join(component) + "\n" + "\n".join(lines)


def test_no_import_cycles():
  graph = _import_graph()
  cycles = _cycles(graph)
  assert not cycles, "import cycles (each: its modules, then its imports):\n" + (
      "\n".join(_describe_cycle(graph, c) for c in cycles))


def test_every_module_has_a_layer():
  unplaced = sorted(m for m in _known_modules() if _layer_of(m) is None)
  assert unplaced == [], f"add these to a row of _LAYERS: {unplaced}"


def _upward_imports() -> list:
  known, exports = _known_modules(), _lazy_exports()
  bad = []
  for path in sorted(_PACKAGE.rglob("*.py")):
    source = _module_name(path)
    for module, line in sorted(_imports(path, known, exports),
                               key=lambda item: (item[1], item[0])):
      if not _under(module, "estlab"):
        continue
      target = _layer_of(module)
      if target is not None and target > _layer_of(source):
        bad.append(f"{path.relative_to(_ROOT).as_posix()}:{line} "
                   f"({_LAYERS[_layer_of(source)][0]}) imports {module} "
                   f"({_LAYERS[target][0]})")
  return bad


def test_layers_import_only_downwards_in_order():
  assert _upward_imports() == []


@pytest.mark.parametrize("statement,heavy", _LIGHT_IMPORTS,
                         ids=[s for s, _ in _LIGHT_IMPORTS])
def test_import_does_not_load_heavy_libraries(statement, heavy):
  script = (f"{statement}\nimport json, sys\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
  result = subprocess.run([sys.executable, "-c", script], cwd=_ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
  loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
  assert loaded.isdisjoint(heavy), (
      f"{statement!r} loaded {sorted(loaded & set(heavy))}")


# -- the checker itself ---------------------------------------------------------


def _write(tmp_path, rel, text):
  path = tmp_path / rel
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)
  return path


def test_checker_resolves_relative_and_lazy_imports(tmp_path, monkeypatch):
  monkeypatch.setattr(sys.modules[__name__], "_ROOT", tmp_path)
  monkeypatch.setattr(sys.modules[__name__], "_PACKAGE", tmp_path / "estlab")
  _write(tmp_path, "estlab/__init__.py",
         "_EXPORTS = {'Estimator': 'estlab.estimator'}\n")
  _write(tmp_path, "estlab/estimator.py", "")
  _write(tmp_path, "estlab/cli.py", "")
  _write(tmp_path, "estlab/inputs/__init__.py", "from . import numpy_io\n")
  numpy_io = _write(tmp_path, "estlab/inputs/numpy_io.py",
                    "from .. import cli\n"
                    "def f():\n  from ..estimator import Estimator\n"
                    "from estlab import Estimator\n"
                    "import importlib\nimportlib.import_module('estlab.cli')\n")
  found = {m for m, _ in _imports(numpy_io, _known_modules(), _lazy_exports())}
  assert {"estlab.cli", "estlab.estimator", "importlib"} <= found
  inputs_rule, = [r for r in _FORBIDDEN if r.name.startswith("inputs")]
  assert _violations(inputs_rule) == [
      "estlab/inputs/numpy_io.py:1 imports estlab.cli",
      "estlab/inputs/numpy_io.py:3 imports estlab.estimator",
      "estlab/inputs/numpy_io.py:4 imports estlab.estimator",
      "estlab/inputs/numpy_io.py:6 imports estlab.cli",
  ]


def test_cycle_finder_lists_every_cycle_with_its_imports(tmp_path, monkeypatch):
  monkeypatch.setattr(sys.modules[__name__], "_ROOT", tmp_path)
  monkeypatch.setattr(sys.modules[__name__], "_PACKAGE", tmp_path / "estlab")
  _write(tmp_path, "estlab/__init__.py",
         "_EXPORTS = {'Estimator': 'estlab.estimator'}\n"
         "from typing import TYPE_CHECKING\n"
         "if TYPE_CHECKING:\n  from estlab.estimator import Estimator\n")
  _write(tmp_path, "estlab/estimator.py",
         "def f():\n  from estlab.export import _exporter\n")
  _write(tmp_path, "estlab/export/__init__.py", "")
  _write(tmp_path, "estlab/export/_exporter.py",
         "from estlab import __version__\n")  # the root package: a cycle
  _write(tmp_path, "estlab/heads/__init__.py", "from . import _base\n")
  _write(tmp_path, "estlab/heads/_base.py",
         "from estlab.export import PredictOutput\n")  # the package's __init__
  _write(tmp_path, "estlab/spec.py", "import estlab.heads._base.Head\n")
  graph = _import_graph()
  assert graph["estlab.spec"] == {"estlab.heads._base": ("estlab/spec.py", 1)}
  assert _cycles(graph) == [
      ["estlab", "estlab.estimator", "estlab.export._exporter"]]
  _write(tmp_path, "estlab/export/__init__.py", "from estlab import heads\n")
  graph = _import_graph()
  assert _cycles(graph) == [
      ["estlab", "estlab.estimator", "estlab.export._exporter"],
      ["estlab.export", "estlab.heads", "estlab.heads._base"]]
  assert _describe_cycle(graph, _cycles(graph)[1]) == (
      "  estlab.export, estlab.heads, estlab.heads._base\n"
      "    estlab/export/__init__.py:1 imports estlab.heads\n"
      "    estlab/heads/__init__.py:1 imports estlab.heads._base\n"
      "    estlab/heads/_base.py:1 imports estlab.export")
  assert _cycles({"a": {"b": 0}, "b": {"c": 0}, "c": {"b": 0, "a": 0},
                  "d": {"a": 0}}) == [["a", "b", "c"]]


def test_layer_checker_flags_an_upward_import(tmp_path, monkeypatch):
  monkeypatch.setattr(sys.modules[__name__], "_ROOT", tmp_path)
  monkeypatch.setattr(sys.modules[__name__], "_PACKAGE", tmp_path / "estlab")
  _write(tmp_path, "estlab/__init__.py", "")
  _write(tmp_path, "estlab/estimator.py", "from estlab.data import x\n")
  _write(tmp_path, "estlab/data/__init__.py", "")
  _write(tmp_path, "estlab/data/x.py", "def f():\n  from estlab import estimator\n")
  assert _upward_imports() == [
      "estlab/data/x.py:2 (the input path) imports estlab.estimator "
      "(the estimator)"]
  _write(tmp_path, "estlab/stray.py", "")
  assert _layer_of("estlab.stray") is None  # test_every_module_has_a_layer
