"""Every public name of TF 2.15's tf.estimator is at the same path in estlab.

The list is tests/tf_reference/tf215_public_names.json, generated once from
TF 2.15 by tests/tf_reference/make_public_names.py (``dir()`` of each module,
without ``_`` names and submodules: 93 names). ``tf.estimator.X`` ->
``estlab.X``, ``tf.estimator.export.X`` -> ``estlab.export.X``,
``tf.estimator.experimental.X`` -> ``estlab.experimental.X``,
``tf.feature_column.X`` -> ``estlab.feature_column.X``,
``tf.compat.v1.estimator.inputs.X`` -> ``estlab.inputs.X``.

Each must be a real implementation: a class or function defined in estlab
(not a re-export of something else), whose body is not a bare ``raise
NotImplementedError``, whose construction without arguments (where that is
possible) does not raise NotImplementedError, and, for a base class with
methods left to subclasses (``Exporter.export``), with a public subclass
among the names that implements them.
"""
import ast
import importlib
import inspect
import json
import pathlib
import tempfile
import textwrap
import types

import pytest

_REFERENCE = json.loads((pathlib.Path(__file__).resolve().parent /
                         "tf_reference" / "tf215_public_names.json").read_text())
_PATHS = {"tf.estimator": "estlab",
          "tf.estimator.export": "estlab.export",
          "tf.estimator.experimental": "estlab.experimental",
          "tf.feature_column": "estlab.feature_column",
          "tf.compat.v1.estimator.inputs": "estlab.inputs"}
_ALL = [(module, name) for module, names in _REFERENCE["modules"].items()
        for name in names]
_MISSING = object()

# The names issue #21's "exporters and helpers at the top level" part built
# (each also has behaviour tests: tests/test_tf_paths.py,
# tests/feature_column/test_parsing.py, tests/export/test_eval_output.py,
# tests/export/test_tensor_receiver.py).
_BUILT_HERE = [
    ("tf.estimator", "Exporter"), ("tf.estimator", "LatestExporter"),
    ("tf.estimator", "BestExporter"), ("tf.estimator", "FinalExporter"),
    ("tf.estimator", "classifier_parse_example_spec"),
    ("tf.estimator", "regressor_parse_example_spec"),
    ("tf.estimator", "Head"),
    ("tf.estimator.export", "EvalOutput"),
    ("tf.estimator.export", "TensorServingInputReceiver"),
    ("tf.estimator.experimental", "build_raw_supervised_input_receiver_fn"),
]


def _resolve(tf_module: str, name: str):
  return getattr(importlib.import_module(_PATHS[tf_module]), name, _MISSING)


def _body(function) -> list:
  """The statements of a function's body, without its docstring."""
  try:
    source = textwrap.dedent(inspect.getsource(function))
  except (OSError, TypeError):
    return []
  node = ast.parse(source).body[0]
  body = list(getattr(node, "body", []))
  if body and isinstance(body[0], ast.Expr) and isinstance(
      getattr(body[0], "value", None), ast.Constant) and isinstance(
          body[0].value.value, str):
    body = body[1:]
  return body


def _raises_not_implemented(function) -> bool:
  """Whether the body is nothing but ``raise NotImplementedError[(...)]``."""
  body = _body(function)
  if len(body) != 1 or not isinstance(body[0], ast.Raise):
    return False
  exc = body[0].exc
  exc = exc.func if isinstance(exc, ast.Call) else exc
  return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def _is_empty(function) -> bool:
  """A function (not a method) doing nothing: ``pass`` / ``...`` / no body."""
  body = _body(function)
  return all(isinstance(s, ast.Pass) or (
      isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
             for s in body)


def _unimplemented(cls) -> set:
  """Abstract methods of ``cls``, and its public methods (as resolved on it)
  that only raise NotImplementedError (a private helper may, where the class
  overrides the public methods that would call it)."""
  left = set(getattr(cls, "__abstractmethods__", ()))
  for attr in dir(cls):
    if attr.startswith("_"):
      continue
    value = inspect.getattr_static(cls, attr, None)
    value = getattr(value, "__func__", value)  # static/class methods
    if inspect.isfunction(value) and _raises_not_implemented(value):
      left.add(attr)
  return left


def _stub_reason(obj, public: list) -> str | None:
  """Why ``obj`` is not a real implementation, or None."""
  if isinstance(obj, types.ModuleType) or not callable(obj):
    return f"not a class or function ({type(obj).__name__})"
  module = getattr(obj, "__module__", "") or ""
  if not (module == "estlab" or module.startswith("estlab.")):
    return f"defined in {module!r}, not in estlab"
  if inspect.isclass(obj):
    for method in ("__init__", "__new__", "__call__"):
      own = inspect.getattr_static(obj, method, None)
      own = getattr(own, "__func__", own)
      if inspect.isfunction(own) and _raises_not_implemented(own):
        return f"{method} raises NotImplementedError"
    try:
      obj()
    except NotImplementedError as e:
      return f"construction raises NotImplementedError: {e}"
    except Exception:  # pylint: disable=broad-except
      pass  # needs arguments (or is abstract): not a stub for that
    left = _unimplemented(obj)
    if left and not any(
        inspect.isclass(other) and other is not obj and issubclass(other, obj)
        and not _unimplemented(other) for other in public):
      return (f"methods {sorted(left)} are left to subclasses and no public "
              "subclass implements them")
    return None
  if _raises_not_implemented(obj) or _is_empty(obj):
    return "its body does nothing or raises NotImplementedError"
  return None


def _problems(pairs) -> tuple[list, list]:
  """``(missing paths, ['path: why it is a stub', ...])``."""
  public = [obj for obj in (_resolve(m, n) for m, n in _ALL)
            if obj is not _MISSING]
  missing, stubs = [], []
  for tf_module, name in pairs:
    path = f"{_PATHS[tf_module]}.{name}"
    obj = _resolve(tf_module, name)
    if obj is _MISSING:
      missing.append(path)
      continue
    reason = _stub_reason(obj, public)
    if reason:
      stubs.append(f"{path}: {reason}")
  return missing, stubs


def test_the_reference_is_tf_215s_list():
  assert _REFERENCE["tensorflow"].startswith("2.15")
  assert set(_REFERENCE["modules"]) == set(_PATHS)
  assert len(_ALL) == len(set(_ALL)) == _REFERENCE["count"] == 93
  for tf_module, subs in _REFERENCE["submodules"].items():
    for sub in subs:  # tf.estimator.export -> estlab.export, a module too
      assert isinstance(_resolve(tf_module, sub), types.ModuleType), sub


def _sandbox(monkeypatch, tmp_path):
  """Constructors called without arguments write only under ``tmp_path``
  (an estimator without model_dir makes a temporary one)."""
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def test_every_tf_name_is_at_its_estlab_path(monkeypatch, tmp_path):
  _sandbox(monkeypatch, tmp_path)
  missing, stubs = _problems(_ALL)
  assert not missing and not stubs, (
      f"{len(missing)} of {len(_ALL)} TF 2.15 names are missing: {missing}; "
      f"{len(stubs)} are stubs: {stubs}")


def test_the_exporters_and_helpers_at_tf_paths_are_there(monkeypatch, tmp_path):
  _sandbox(monkeypatch, tmp_path)
  assert set(_BUILT_HERE) <= set(_ALL)
  assert _problems(_BUILT_HERE) == ([], [])


def test_the_stub_check_finds_stubs():
  def stub():
    """Documented, but not built."""
    raise NotImplementedError("later")

  def empty():
    pass

  class Stub:
    def __init__(self):
      raise NotImplementedError

  class Base:
    def run(self):
      raise NotImplementedError

    def _helper(self):  # private: a subclass may never call it
      raise NotImplementedError

  class Concrete(Base):
    def run(self):
      return 1

  for obj in (stub, empty, Stub, Base, Concrete):
    obj.__module__ = "estlab.fake"
  assert "NotImplementedError" in _stub_reason(stub, [])
  assert _stub_reason(empty, []) is not None
  assert "__init__" in _stub_reason(Stub, [])
  assert "left to subclasses" in _stub_reason(Base, [Base])
  assert _stub_reason(Base, [Base, Concrete]) is None
  assert _stub_reason(Concrete, [Base, Concrete]) is None
  assert "not in estlab" in _stub_reason(json.dumps, [])
  assert "not a class" in _stub_reason(_REFERENCE, [])
