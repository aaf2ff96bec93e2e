"""``estlab.export.load``: run an export without the code that defined the model.

Reads ``estlab_export.json``, deserializes the ``jax.export`` module (no
pickle: a flatbuffer), restores the variables with Orbax onto the device once,
and rebuilds the feature columns from their JSON specs. Each signature is a
callable ``sig({feature: values}) -> {output: numpy array}``: the request is
parsed and encoded on the host, padded to a power-of-two batch by repeating
its last example (so a few compiled versions serve every batch size;
predictions are per example, as tf.estimator requires), run through one
``jax.jit`` of ``exported.call`` per signature, and its string outputs (class
names) are added on the host. The ``eval`` signature (an EVAL module,
``eval.jaxexport``) also takes ``'labels'``, encoded with the saved label
description (``_parsing.parse_labels``), and is not padded: its metrics are
of the batch as sent; nor is a module with any output that is not per
example (an ``EvalOutput``'s loss, say). Calls are thread-safe. Imports neither the estimator
nor the premade models.

Example:
  >>> imported = load(export_dir)                      # doctest: +SKIP
  >>> imported.signatures['predict']({'x': [1.5, 3.5]})['class_ids']  # doctest: +SKIP
  array([[1], [0]], dtype=int32)
"""
from __future__ import annotations

import os
import subprocess
import sys
import types
from typing import Any, Mapping

import jax
import numpy as np

from estlab import feature_column as fc
from estlab.export import _format, _integrity, _parsing

__all__ = ["load", "Imported", "Signature"]

_PREDICT, _EVAL = "infer", "eval"  # ModeKeys' values (not imported: no model code)


def _bucket(batch: int) -> int:
  """The next power of two: padded batches compile a few shapes, not one each."""
  return 1 << max(batch - 1, 0).bit_length()


def _paths(tree: Any) -> list[str]:
  leaves = jax.tree_util.tree_flatten_with_path(tree.unflatten(
      range(tree.num_leaves)))[0]
  return ["/".join(str(getattr(k, "key", k)) for k in path) for path, _ in leaves]


class _Servable:
  """What the signatures of one module share: module, variables on device,
  input layout. ``section`` is the description's (or its ``eval`` entry's)
  receiver and transform, ``key`` its prefix in messages (``''`` or
  ``'eval.'``); an EVAL module also takes labels. ``checked``: its files
  passed their checksums (else its StableHLO is read at load)."""

  def __init__(self, export_dir: str, section: dict, module: str, key: str,
               checked: bool):
    file = _integrity.inside(export_dir, module,
                             f"{key}module" if key else "the PREDICT module")
    with open(file, "rb") as f:
      data = bytearray(f.read())
    self.file, self.checked = file, checked
    if not checked:  # no checksums: its StableHLO is read in a child first
      _read_in_child(file)
    try:
      self.exported = jax.export.deserialize(data)
    except Exception as e:  # pylint: disable=broad-except
      # Flatbuffers of damaged bytes fail in many ways (struct.error,
      # IndexError, UnicodeDecodeError, ...), StableHLO bytecode as
      # "failed to deserialize"; an export with checksums never gets here
      # damaged.
      raise _format.DamagedExportError(
          f"{file!r} is not a readable jax.export module ({type(e).__name__}:"
          f" {e}): the export is damaged; export again.") from e
    platform = jax.export.default_export_platform()
    if platform not in self.exported.platforms:
      raise ValueError(
          f"{export_dir!r} was exported for {list(self.exported.platforms)!r}, "
          f"not for this {platform!r} backend; export again with it.")
    args_tree, _ = self.exported.in_tree.children()  # (args, kwargs)
    var_tree, self.feature_tree, *label_tree = args_tree.children()
    n = var_tree.num_leaves
    self.variables = jax.device_put(_restore(
        _integrity.inside(export_dir, _format.VARIABLES, "variables"),
        var_tree, self.exported.in_avals[:n]))
    self.feature_paths = _paths(self.feature_tree)
    self.feature_avals = self.exported.in_avals[n:n + self.feature_tree.num_leaves]
    self.labels = section.get("labels")  # {'labels' | 'labels/<k>': JSON}
    self.label_tree = label_tree[0] if label_tree else None
    self.receiver = section["receiver"]
    self.transform = section["transform"]
    self.columns = None
    if self.transform["kind"] == "feature_columns":
      where = f"{key}transform.feature_columns"
      self.columns = [
          fc.from_spec(_local_files(export_dir, s, f"{where}[{i}]"))
          for i, s in enumerate(self.transform["feature_columns"])]
    self.out_avals = self.exported.out_tree.unflatten(self.exported.out_avals)
    # Padding repeats examples: fine per example, wrong for a batch's metrics
    # (an eval module's, or an EvalOutput's scalars in a serving signature).
    per_example = all(a.shape and str(a.shape[0]) == "b"
                      for outputs in self.out_avals.values()
                      for a in outputs.values())
    self.pad = (self.receiver.get("default_batch_size") is None and
                not self.labels and per_example)
    # Builds the vocabulary indexes now, not racing in the first requests.
    self.features(_parsing.sample_request(self.receiver["inputs"]))

  def inputs(self, request: Any) -> tuple[tuple, int]:
    """The module's inputs after the variables, and the request's batch."""
    if not self.labels:
      features, batch = self.features(request)
      return (features,), batch
    if not isinstance(request, Mapping):
      raise _format.ServingInputTypeError(
          f"A request must be a dict of feature name -> values, got "
          f"{type(request).__name__}: {request!r:.80}.")
    request = dict(request)
    labels = request.pop("labels", None)
    features, batch = self.features(request)
    flat = _parsing.parse_labels(self.labels, labels, batch)
    leaves = [flat[p] for p in _label_paths(self.label_tree)]
    return (features, self.label_tree.unflatten(leaves)), batch

  def features(self, request: Any) -> tuple[dict, int]:
    """The module's feature pytree for a request, and the request's batch."""
    features, batch = _parsing.parse(self.receiver["inputs"], request)
    encoded = _parsing.transform(self.transform, self.columns, features, batch)
    flat = _flatten(encoded)
    rows = _bucket(batch) if self.pad else batch
    leaves = []
    for path, aval in zip(self.feature_paths, self.feature_avals):
      if path not in flat:
        raise RuntimeError(f"The host step gave features {sorted(flat)!r}, not "
                           f"{path!r} as the exported module takes.")
      value = np.asarray(flat[path], dtype=aval.dtype)
      static = [(i, d) for i, d in enumerate(aval.shape) if isinstance(d, int)]
      if value.ndim != len(aval.shape) or any(
          value.shape[i] != d for i, d in static if i or not self.pad):
        raise _format.ServingInputError(
            f"Feature {path!r} has shape {list(value.shape)!r}; the export "
            f"takes {[str(d) for d in aval.shape]!r}.")
      if rows > batch:
        value = np.pad(value, [(0, rows - batch)] + [(0, 0)] * (value.ndim - 1),
                       mode="edge")
      leaves.append(value)
    return self.feature_tree.unflatten(leaves), batch


def _read_module(file: str) -> None:
  """Deserializes the module in ``file``, lowers ``exported.call`` for its
  abstract inputs and for a concrete shape (every symbolic dimension 1), and
  compiles the latter: refining the module's polymorphic shapes reads the
  rest of its StableHLO, and compiling hands it to XLA.

  Raises:
    DamagedExportError: any of it fails (flatbuffers of damaged bytes fail
      in many ways: struct.error, IndexError, UnicodeDecodeError, ...;
      StableHLO bytecode as "failed to deserialize").
  """
  with open(file, "rb") as f:
    data = bytearray(f.read())
  try:
    exported = jax.export.deserialize(data)
    for concrete in (False, True):
      args, kwargs = exported.in_tree.unflatten([
          jax.ShapeDtypeStruct(
              tuple(d if isinstance(d, int) or not concrete else 1
                    for d in a.shape), a.dtype)
          for a in exported.in_avals])
      lowered = jax.jit(exported.call).lower(*args, **kwargs)
    lowered.compile()
  except Exception as e:  # pylint: disable=broad-except
    raise _format.DamagedExportError(
        f"{file!r} is not a readable jax.export module ({type(e).__name__}:"
        f" {str(e)[:500]}): the export is damaged; export again.") from e


_CHILD = ("import sys\n"
          "from estlab.export import _format, _loader\n"
          "try:\n"
          "  _loader._read_module(sys.argv[1])\n"
          "except _format.DamagedExportError as e:\n"
          "  sys.stderr.write(str(e)); sys.exit(3)\n")


def _read_in_child(file: str, timeout: float = 300) -> None:
  """Reads an export's module (``_read_module``) in a child process first.

  An export written before checksums cannot be checked byte for byte, and
  XLA's StableHLO reader crashes the process (a segfault, which no Python
  code can catch) on some damaged bytes: about 4 in 10 single flipped bytes
  of a small module did in ``tests/export/test_export_integrity.py``. A
  child costs about 2 s per load of such an export; exports with checksums
  skip it.

  Raises:
    DamagedExportError: the child found the module damaged, crashed reading
      it, or did not finish in ``timeout`` seconds.
  """
  try:
    child = subprocess.run([sys.executable, "-c", _CHILD, file],
                           capture_output=True, text=True, errors="replace",
                           timeout=timeout, check=False)
  except subprocess.TimeoutExpired as e:
    raise _format.DamagedExportError(
        f"Reading {file!r} (an export without checksums) in a child process "
        f"did not finish in {timeout:g} s; the export is probably damaged: "
        "export again.") from e
  if child.returncode == 3:
    raise _format.DamagedExportError(child.stderr.strip())
  if child.returncode:
    how = (f"crashed with signal {-child.returncode}" if child.returncode < 0
           else f"failed (exit {child.returncode}: {child.stderr[-500:]!r})")
    raise _format.DamagedExportError(
        f"Reading {file!r} (an export without checksums) {how} in a child "
        "process: the module is damaged; export again.")


def _local_files(export_dir: str, spec: Any, key: str) -> Any:
  """A column spec whose files to read resolve inside the export.

  A vocabulary file column's spec holds its vocabulary (read when it was
  made; its ``vocabulary_file`` only records where from, and is never
  opened). One without it would read ``vocabulary_file``: that path must be
  relative and inside the export, and is resolved against it.

  Raises:
    DamagedExportError: such a path resolves outside the export (the
      message names it and ``key``, e.g. ``transform.feature_columns[0]``).
  """
  if isinstance(spec, list):
    return [_local_files(export_dir, v, f"{key}[{i}]") for i, v in enumerate(spec)]
  if not isinstance(spec, Mapping):
    return spec
  spec = {k: _local_files(export_dir, v, f"{key}.{k}") for k, v in spec.items()}
  config = spec.get("config")
  if (isinstance(config, dict) and "vocabulary_file" in config and
      not config.get("vocabulary")):
    config["vocabulary_file"] = _integrity.inside(
        export_dir, config["vocabulary_file"],
        f"{key}.config.vocabulary_file")
  return spec


def _label_paths(tree: Any) -> list[str]:
  """``'labels'`` for one array, ``'labels/<k>'`` for a dict of them."""
  return ["/".join(["labels", p] if p else ["labels"]) for p in _paths(tree)]


def _flatten(tree: Mapping, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f"{prefix}{key}/"))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _restore(path: str, tree: Any, avals: tuple) -> Any:
  """The variables from Orbax, checked against the module's inputs."""
  if not tree.num_leaves:
    return tree.unflatten([])
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  checkpointer = ocp.StandardCheckpointer()
  try:
    restored = checkpointer.restore(path)
  except Exception as e:  # pylint: disable=broad-except
    # Damaged Orbax files fail in TensorStore, JSON, msgpack, ...; an export
    # with checksums never gets here damaged.
    raise _format.DamagedExportError(
        f"The variables in {path!r} cannot be restored ({type(e).__name__}: "
        f"{str(e)[:500]}): the export is damaged; export again.") from e
  finally:
    checkpointer.close()
  restored = jax.tree.map(np.asarray, _as_dicts(restored))
  leaves, structure = jax.tree.flatten(restored)
  if structure != tree or any(np.shape(v) != tuple(a.shape) or
                              np.dtype(v.dtype) != np.dtype(a.dtype)
                              for v, a in zip(leaves, avals)):
    raise _format.DamagedExportError(
        f"The variables in {path!r} do not match the exported module's inputs;"
        " the export is damaged or mixed from two exports. Export again.")
  return restored


def _as_dicts(tree: Any) -> Any:
  if isinstance(tree, Mapping):
    return {k: _as_dicts(v) for k, v in tree.items()}
  return tree


class Signature:
  """One serving signature: ``sig({feature: values}) -> {output: array}``.

  ``sig(feature=values)`` too, and for a parsing export, as TF's,
  ``sig(examples=[serialized tf.train.Example, ...])``.

  Attributes:
    name: the signature key, e.g. ``'serving_default'``.
    method_name: TF Serving's method, ``'tensorflow/serving/predict'``,
      ``.../classify`` or ``.../regress``; ``'tensorflow/supervised/eval'``
      for ``eval`` (it takes ``'labels'`` too and returns scalars).
    inputs: ``{feature: {'kind', 'dtype', 'shape', ...}}``; ``shape`` starts
      with the batch (None: any), None for any number of values.
    outputs: ``{output: {'dtype', 'shape'}}``, in the order they are returned.
  """

  def __init__(self, name: str, description: dict, servable: _Servable):
    self.name = name
    self.method_name = description["method_name"]
    self.inputs = types.MappingProxyType(description["inputs"])
    self.outputs = types.MappingProxyType(description["outputs"])
    self._host = description["host_outputs"]
    self._servable = servable
    avals = servable.out_avals[name]
    self._batched = {k for k, a in avals.items()
                     if a.shape and str(a.shape[0]) == "b"}
    exported = servable.exported
    self._fn = jax.jit(lambda variables, *inputs: exported.call(
        variables, *inputs)[name])
    self._compiled: set[tuple] = set()  # shapes run (exports w/o checksums)

  def __call__(self, inputs: Mapping[str, Any] | None = None, /,
               **kwargs: Any) -> dict[str, np.ndarray]:
    """Runs the signature on a batch: ``sig({...})`` or ``sig(name=values)``.

    Example:
      >>> sig({'x': [1.5, 3.5]})                       # doctest: +SKIP
      >>> sig(x=[1.5, 3.5])                            # doctest: +SKIP
      >>> sig(examples=[example.SerializeToString()])  # doctest: +SKIP

    Args:
      inputs: ``{feature: values}``, one value per example (a list per
        example for several values); numbers, strings, lists or arrays. An
        export with a parsing receiver also takes ``{'examples': [...]}``:
        serialized ``tf.train.Example`` protos, as TF's (``'inputs'`` too,
        the name TF's classify/regress signatures give them).
      **kwargs: the same as keywords (merged with ``inputs``).

    Returns:
      ``{output: numpy array}``, batch first; strings as object arrays.

    Raises:
      ServingInputError: unknown or missing features, wrong shapes or a batch
        that does not fit, malformed Examples (ServingInputTypeError for
        wrong types).
      TypeError: a keyword repeats a key of ``inputs``.
    """
    if kwargs:
      given = {} if inputs is None else inputs
      if not isinstance(given, Mapping) or set(given) & set(kwargs):
        raise TypeError(
            f"Signature {self.name!r} got {inputs!r:.80} and keywords "
            f"{sorted(kwargs)!r}; give a dict of feature -> values or "
            "keywords, each feature once.")
      inputs = {**given, **kwargs}
    servable = self._servable
    args, batch = servable.inputs(inputs)
    device = jax.device_get(self._run(args))
    out = {k: np.asarray(v)[:batch] if k in self._batched else np.asarray(v)
           for k, v in device.items()}
    for key, op in self._host.items():
      names = np.asarray(op.get("names", ()), dtype=object)
      if op["op"] == "lookup":
        out[key] = names[out[op["source"]]]
      elif op["op"] == "decimal":
        out[key] = out[op["source"]].astype(str).astype(object)
      else:  # tile
        like = next(out[k] for k in op["like"] if k in out)
        out[key] = np.broadcast_to(names, like.shape).copy()
    return {k: out[k] for k in self.outputs}

  def _run(self, args: tuple) -> Any:
    """The compiled call. An export without checksums was read at load at
    its abstract and one concrete shape; compiling it for another refines its
    shapes again and can meet damage only now: the first call of each shape
    names it as such, not as JAX's "Error refining shapes"."""
    servable = self._servable
    if servable.checked:
      return self._fn(servable.variables, *args)
    shapes = tuple((a.shape, str(a.dtype)) for a in jax.tree.leaves(args))
    if shapes in self._compiled:
      return self._fn(servable.variables, *args)
    try:
      out = self._fn(servable.variables, *args)
    except Exception as e:  # pylint: disable=broad-except
      raise _format.DamagedExportError(
          f"{servable.file!r} could not be compiled for inputs of shape "
          f"{[s for s, _ in shapes]} ({type(e).__name__}: {str(e)[:300]}): "
          "the export (which has no checksums) is damaged; export again."
      ) from e
    self._compiled.add(shapes)
    return out

  def cache_size(self) -> int:
    """How many compiled versions exist: one per padded input shape."""
    return self._fn._cache_size()  # pylint: disable=protected-access

  def __repr__(self) -> str:
    return (f"Signature({self.name!r}, method_name={self.method_name!r}, "
            f"inputs={list(self.inputs)!r}, outputs={list(self.outputs)!r})")


class Imported:
  """A loaded export, as ``tf.saved_model.load``'s object.

  Attributes:
    path: the export directory (``<export_dir_base>/<timestamp>``).
    signatures: ``{name: Signature}`` (read-only).
    description: the parsed ``estlab_export.json``.
    global_step: the checkpoint's step.
  """

  def __init__(self, path: str, description: dict, servables: dict):
    self.path = path
    self.description = description
    self.global_step = description.get("global_step")
    self.signatures = types.MappingProxyType({
        name: Signature(name, sig, servables[sig.get("mode", _PREDICT)])
        for name, sig in description["signatures"].items()})

  def __repr__(self) -> str:
    return f"Imported({self.path!r}, signatures={sorted(self.signatures)!r})"


def load(path: str | os.PathLike) -> Imported:
  """Loads an export; its signatures run without the model's code.

  Example:
    >>> imported = estlab.export.load(export_dir_base)    # doctest: +SKIP
    >>> imported.signatures['predict']({'x': [1.5, 3.5]})  # doctest: +SKIP

  Args:
    path: the directory ``export_saved_model`` returned, or its
      ``export_dir_base`` (the newest complete export there is loaded).

  Raises:
    NotAnExportError: (a FileNotFoundError and a ValueError) no export there,
      or one written by a newer estlab.
    DamagedExportError: (a NotAnExportError) a file differs from its
      checksum (the message names it), a module or the variables cannot be
      read, or a path the export names resolves outside it (the message
      names the path and its key). Nothing of it runs.
  """
  export_dir = _format.resolve_export_dir(path)
  listed = _integrity.verify(export_dir)  # before anything is parsed
  description = _format.read_description(export_dir)
  try:
    modules = [_format.MODULE] if "receiver" in description else []
    if "eval" in description:
      module = description["eval"]["module"]
      _integrity.inside(export_dir, module, "eval.module")
      modules.append(module)
    _integrity.require_listed(export_dir, listed,
                              [_format.DESCRIPTION, *modules], description)
    servables = {}
    if "receiver" in description:  # the PREDICT module
      servables[_PREDICT] = _Servable(export_dir, description, _format.MODULE,
                                      "", listed is not None)
    if "eval" in description:
      section = description["eval"]
      servables[_EVAL] = _Servable(export_dir, section, section["module"],
                                   "eval.", listed is not None)
    return Imported(export_dir, description, servables)
  except _format.NotAnExportError:
    raise
  except (OSError, LookupError, TypeError, AttributeError) as e:
    raise _format.DamagedExportError(
        f"{export_dir!r} is an incomplete or damaged estlab export "
        f"({type(e).__name__}: {e}); export again.") from e
  except RecursionError:
    raise _format.DamagedExportError(
        f"{export_dir!r}'s {_format.DESCRIPTION} nests too deeply to be an "
        "estlab export: it is damaged or crafted; export again.") from None
