"""``Estimator.export_saved_model``: a checkpoint to a servable directory.

The PREDICT-mode model_fn becomes ``serve(variables, features) ->
{signature: {output: array}}`` (and the EVAL-mode one, when asked,
``evaluate(variables, features, labels)``: ``estlab.export._eval``), jitted
and exported with ``jax.export`` for
cpu, cuda and tpu, with a symbolic batch dimension; the variables are saved
beside it with Orbax, and the receiver, the host transform (feature column
specs) and the signatures are described in JSON. The directory is written
under a ``temp-`` name and renamed when whole. The layout is in the package
docstring (``estlab.export``).

What it reads of the estimator is a ``Servable`` (``estlab.export._servable``,
built by ``Estimator._servable()``): this module imports neither the
estimator nor the premade estimators.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from typing import Any, Callable, Mapping

import jax
import numpy as np

from estlab import feature_column as fc
from estlab._version import __version__
from estlab.export import (_eval, _format, _integrity, _parsing, _receivers,
                           _signatures, _temp_dirs)
from estlab.export._servable import Servable
from estlab.spec import ModeKeys

__all__ = ["export_saved_model", "experimental_export_all_saved_models",
           "PLATFORMS", "FORMATS"]

logger = logging.getLogger("estlab")

PLATFORMS = ("cpu", "cuda", "tpu")
FORMATS = ("estlab", "tf_saved_model")  # export_saved_model(format=...)
_now = time.time  # the export's timestamp (tests pass time in)


_MODES = (ModeKeys.PREDICT, ModeKeys.EVAL)  # exportable, in the order written


def _check_mode(mode: Any) -> None:
  if mode not in _MODES:
    raise ValueError(
        f"Cannot export mode {mode!r}: estlab exports PREDICT and EVAL only; "
        f"the supported modes are {list(_MODES)!r} (ModeKeys.PREDICT, "
        "ModeKeys.EVAL). Train with the Estimator itself.")


def _plain(tree: Any) -> Any:
  """Mappings (Flax FrozenDicts included) as plain dicts, leaves as numpy."""
  if isinstance(tree, Mapping):
    return {str(k): _plain(v) for k, v in tree.items()}
  return np.asarray(tree)


def _host_columns(servable: Servable, receiver: Any, inputs: dict
                  ) -> tuple[dict, list | None]:
  """``(transform description, columns)``: the estimator's host step as JSON.

  Raises:
    ValueError: the host step runs Python that no JSON describes.
  """
  if isinstance(receiver, _receivers.TensorServingInputReceiver) and (
      servable.host.feature_columns is not None):
    raise ValueError(
        f"{servable.model} reads a dict of features (its feature columns), but"
        " the receiver is a TensorServingInputReceiver, whose model_fn gets one"
        " bare array. Use build_parsing_serving_input_receiver_fn("
        "make_parse_example_spec(feature_columns)).")
  if receiver.kind == "raw":
    return {"kind": "none"}, None
  if servable.host.feature_columns is not None:
    columns = list(servable.host.feature_columns)
    if not columns:
      return {"kind": "batch_size", "key": servable.host.batch_key}, None
    _check_host_callables(columns)
    return {"kind": "feature_columns",
            "feature_columns": [c.spec() for c in columns]}, columns
  if servable.host.python_transform:
    raise ValueError(
        f"{servable.model} transforms its features with Python on the host "
        "(its HostStep.transform), code "
        "that cannot be exported. Export it with build_raw_serving_input_"
        "receiver_fn (the model_fn's features, already transformed).")
  strings = sorted(k for k, d in inputs.items()
                   if d["kind"] == "varlen" or d["dtype"] == "string")
  if strings:
    raise ValueError(
        f"Features {strings!r} are strings or variable-length, but this "
        "model_fn reads its features as they are and strings cannot enter JAX."
        " Give numeric FixedLenFeatures, or use a premade estimator whose "
        "feature columns encode them.")
  return {"kind": "none"}, None


def _check_host_callables(columns: list) -> None:
  """Columns whose host step runs Python (not in their spec) cannot be saved."""
  todo = list(columns)
  while todo:
    column = todo.pop()
    if isinstance(column, fc.BucketizedColumn) and (
        column.source_column.normalizer_fn is not None):
      raise ValueError(
          f"Column {column.name!r} bucketizes {column.source_column.key!r} after"
          " its normalizer_fn, which runs on the host and cannot be exported. "
          "Bucketize the raw values (boundaries in raw units) and keep the "
          "normalizer_fn on a separate numeric_column.")
    todo.extend(p for p in column.parents if isinstance(p, fc.FeatureColumn))


def _abstract_features(model_inputs: dict, batch: int | None, encoded: bool,
                       labels: dict | None = None) -> tuple[dict, dict, Any]:
  """``(ShapeDtypeStructs, JSON, labels' ShapeDtypeStructs)``: the batch ``b``
  symbolic (unless fixed), and, for features encoded on the host, each
  column's id width ``k<i>``. ``labels`` (flat, ``'labels'`` or
  ``'labels/<k>'``) share the batch symbol."""
  flat = _receivers.flatten_features(model_inputs)
  groups = sorted({k.rsplit("/", 1)[0] for k in flat
                   if encoded and k.endswith(("/ids", "/weights"))})
  names = (["b"] if batch is None else []) + [f"k{i}" for i in range(len(groups))]
  dims = dict(zip(names, jax.export.symbolic_shape(", ".join(names)))) if names else {}
  specs, described = {}, {}
  for key, value in flat.items():
    shape = [dims["b"] if batch is None else batch, *value.shape[1:]]
    group = key.rsplit("/", 1)[0]
    if group in groups and len(shape) == 2:
      shape[1] = dims[f"k{groups.index(group)}"]
    specs[key] = jax.ShapeDtypeStruct(tuple(shape), value.dtype)
    described[key] = {"dtype": np.dtype(value.dtype).name,
                      "shape": [d if isinstance(d, int) else str(d) for d in shape]}
  label_specs = _parsing.unflatten({
      key: jax.ShapeDtypeStruct(
          (dims["b"] if batch is None else batch, *value.shape[1:]), value.dtype)
      for key, value in (labels or {}).items()}).get(_receivers.LABELS)
  return _parsing.unflatten(specs), described, label_specs


def _copy_assets(assets_extra: Mapping | None, target: str) -> None:
  """Copies ``{relative destination: source file}`` into ``assets.extra/``."""
  for dest, source in (assets_extra or {}).items():
    dest = os.path.normpath(os.fspath(dest))
    if os.path.isabs(dest) or dest.startswith(".."):
      raise ValueError(f"assets_extra key {dest!r} must be a relative path "
                       "inside assets.extra/, e.g. 'vocab/words.txt'.")
    path = os.path.join(target, _format.ASSETS_EXTRA, dest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copyfile(os.fspath(source), path)


def _save_variables(variables: dict, path: str) -> None:
  if not jax.tree_util.tree_leaves(variables):
    return  # nothing to save; the loader rebuilds the empty tree
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  checkpointer = ocp.StandardCheckpointer()
  try:
    checkpointer.save(path, variables)
    checkpointer.wait_until_finished()
  finally:
    checkpointer.close()


def _publish(temp: str, base: str, stamp: int) -> str:
  """Renames ``temp`` to ``base/<stamp>`` (the next free second if taken)."""
  while True:
    final = os.path.join(base, str(stamp))
    if not os.path.exists(final):
      try:
        os.rename(temp, final)
        return final
      except OSError:
        if not os.path.exists(final):
          raise
    stamp += 1


def _receiver(serving_input_receiver_fn: Callable) -> Any:
  receiver = serving_input_receiver_fn()
  if not isinstance(receiver, _receivers.ServingInputReceiver):
    raise TypeError(
        f"serving_input_receiver_fn returned {receiver!r:.100}; it must return "
        "an estlab.export.ServingInputReceiver, e.g. from estlab.export."
        "build_parsing_serving_input_receiver_fn(feature_spec).")
  return receiver


def _prepare(servable: Servable, receiver: Any
             ) -> tuple[dict, dict, Any, dict]:
  """``(inputs JSON, transform JSON, columns, sample model features)``."""
  inputs = _receivers.describe_features(receiver)
  transform, columns = _host_columns(servable, receiver, inputs)
  features, batch = _parsing.parse(inputs, _parsing.sample_request(inputs))
  try:
    model_inputs = _parsing.transform(transform, columns, features, batch)
  except _format.ServingInputError as e:
    raise ValueError(f"The receiver's features do not fit the estimator's "
                     f"feature columns: {e}") from None
  return inputs, transform, columns, model_inputs


def _export(fn: Callable, args: tuple, inputs: dict) -> Any:
  try:
    return jax.export.export(jax.jit(fn), platforms=PLATFORMS)(*args)
  except (KeyError, fc.MissingFeatureError) as e:
    raise ValueError(
        f"The model_fn could not read the receiver's features {sorted(inputs)!r}"
        f" ({type(e).__name__}: {e}). A raw receiver gives the model_fn its "
        "features as they are (encoded, for a premade estimator); use build_"
        "parsing_serving_input_receiver_fn for raw feature values.") from e


def _single(receiver: Any) -> str | None:
  """A ``TensorServingInputReceiver``'s input name: its model_fn gets that
  array bare (the module still takes ``{name: array}``); else None."""
  if isinstance(receiver, _receivers.TensorServingInputReceiver):
    return receiver.feature_key
  return None


def _section(receiver: Any, inputs: dict, transform: dict, model_inputs: dict
             ) -> dict:
  described = {"kind": receiver.kind,
               "default_batch_size": receiver.default_batch_size,
               "inputs": inputs}
  if _single(receiver) is not None:
    described["tensor"] = _single(receiver)
  return {"receiver": described, "transform": transform,
          "model_inputs": model_inputs}


def _specs(variables: dict) -> Any:
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                      variables)


def _build(servable: Servable, receiver: Any, checkpoint_path: str | None
           ) -> tuple[Any, dict, int, dict, dict]:
  """``(Exported, variables as numpy, step, section, signatures)`` of PREDICT."""
  return _trace(servable, receiver, checkpoint_path)[:5]


def _trace(servable: Servable, receiver: Any, checkpoint_path: str | None
           ) -> tuple[Any, dict, int, dict, dict, Callable, dict]:
  """``_build``'s, then ``serve(variables, features)`` and the abstract
  features it was exported for (the SavedModel writer converts them)."""
  inputs, transform, _, model_inputs = _prepare(servable, receiver)
  single = _single(receiver)
  variables, step = servable.variables(
      ModeKeys.PREDICT, model_inputs if single is None else
      model_inputs[single], None, checkpoint_path)
  variables = _plain(jax.device_get(variables))
  abstract, model_described, _ = _abstract_features(
      model_inputs, receiver.default_batch_size,
      encoded=transform["kind"] == "feature_columns")
  signatures: dict = {}
  serve = _signatures.serve_fn(servable.module(ModeKeys.PREDICT), signatures,
                               single)
  exported = _export(serve, (_specs(variables), abstract), inputs)
  described = _signatures.describe(signatures, exported, inputs,
                                   _signatures.host_ops(servable))
  return (exported, variables, int(step),
          _section(receiver, inputs, transform, model_described), described,
          serve, abstract)


def _build_eval(servable: Servable, receiver: Any, checkpoint_path: str | None
                ) -> tuple[Any, dict, int, dict, dict]:
  """As ``_build``, of the EVAL-mode model_fn (``estlab.export._eval``)."""
  label_inputs = _eval.label_inputs(servable, receiver)
  inputs, transform, _, model_inputs = _prepare(servable, receiver)
  batch = receiver.default_batch_size or 1
  flat_labels = _eval.sample_labels(label_inputs, batch)
  labels = _parsing.unflatten(flat_labels)[_receivers.LABELS]
  variables, step = servable.variables(ModeKeys.EVAL, model_inputs, labels,
                                       checkpoint_path)
  variables = _plain(jax.device_get(variables))
  abstract, model_described, abstract_labels = _abstract_features(
      model_inputs, receiver.default_batch_size,
      encoded=transform["kind"] == "feature_columns", labels=flat_labels)
  evaluate = _eval.eval_fn(servable.module(ModeKeys.EVAL))
  exported = _export(evaluate, (_specs(variables), abstract, abstract_labels),
                     inputs)
  avals = exported.out_tree.unflatten(exported.out_avals)[_eval.SIGNATURE]
  section = _section(receiver, inputs, transform, model_described)
  section.update(module=_format.EVAL_MODULE, labels=label_inputs)
  described = {_eval.SIGNATURE: {
      "method_name": _eval.METHOD_NAME, "mode": ModeKeys.EVAL,
      "inputs": {**inputs, **label_inputs},
      "outputs": {k: {"dtype": a.dtype.name, "shape": []}
                  for k, a in avals.items()},
      "device_outputs": list(avals), "host_outputs": {}}}
  return exported, variables, int(step), section, described


def _in_temp(export_dir_base: Any, fill: Callable[[str], None]) -> str:
  """``fill(temp)`` of a new ``temp-<stamp>-<pid>-<ns>-<host>/``, renamed
  ``<stamp>/``; first the stale temp folders of killed exports there are
  removed (``_temp_dirs``)."""
  base = os.path.abspath(os.fspath(export_dir_base))
  os.makedirs(base, exist_ok=True)
  _temp_dirs.remove_stale(base)
  stamp = int(_now())
  temp = os.path.join(base, _temp_dirs.temp_name(stamp))
  try:
    os.makedirs(temp)
    fill(temp)
    return _publish(temp, base, stamp)
  except BaseException:
    shutil.rmtree(temp, ignore_errors=True)
    raise


def _write(export_dir_base: Any, modules: dict, variables: dict,
           description: dict, assets_extra: Mapping | None, as_text: bool
           ) -> str:
  """Writes the export's files in ``_in_temp``, ``estlab_export.sha256``
  last (``estlab.export._integrity``)."""
  def fill(temp: str) -> None:
    for name, exported in modules.items():
      with open(os.path.join(temp, name), "wb") as f:
        f.write(exported.serialize())
      if as_text:
        with open(os.path.join(temp, _format.TEXT_MODULES[name]), "w",
                  encoding="utf-8") as f:
          f.write(exported.mlir_module())
    _save_variables(variables, os.path.join(temp, _format.VARIABLES))
    _copy_assets(assets_extra, temp)
    with open(os.path.join(temp, _format.DESCRIPTION), "w",
              encoding="utf-8") as f:
      json.dump(description, f, indent=1)
    _integrity.write_checksums(temp)  # last: every file above, fsynced
  return _in_temp(export_dir_base, fill)


def _same_variables(a: dict, b: dict) -> bool:
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  return tree_a == tree_b and all(
      x.shape == y.shape and x.dtype == y.dtype for x, y in zip(leaves_a, leaves_b))


def _export_tf(servable: Servable, export_dir_base: Any, receiver_fns: Mapping,
               assets_extra: Mapping | None, as_text: bool,
               checkpoint_path: str | None) -> str:
  """A TensorFlow SavedModel of PREDICT (``estlab.export._tf_saved_model``)."""
  from estlab.export import _tf_saved_model  # pylint: disable=g-import-not-at-top
  _tf_saved_model.require_tensorflow()  # before the model is traced
  if list(receiver_fns) != [ModeKeys.PREDICT]:
    raise ValueError(
        f"format='tf_saved_model' exports ModeKeys.PREDICT only, not "
        f"{sorted(receiver_fns)!r}; export EVAL with format='estlab'.")
  exported, variables, step, section, described, serve, abstract = _trace(
      servable, _receiver(receiver_fns[ModeKeys.PREDICT]), checkpoint_path)

  def fill(temp: str) -> None:
    _tf_saved_model.write(temp, serve, variables, abstract, section, described,
                          exported.platforms, as_text=as_text)
    _copy_assets(assets_extra, temp)
  path = _in_temp(export_dir_base, fill)
  logger.info("Exported %s (global step %d) as a TF SavedModel to %s",
              servable.model, step, path)
  return path


def _check_not_model_dir(servable: Servable, export_dir_base: Any) -> None:
  """Refuses to export into the model_dir itself, among its checkpoints."""
  if servable.model_dir is None or "://" in str(export_dir_base):
    return
  base = os.path.abspath(os.fspath(export_dir_base))
  if base == os.path.abspath(os.fspath(servable.model_dir)):
    raise ValueError(
        f"export_dir_base={os.fspath(export_dir_base)!r} is the model_dir of "
        f"this {servable.model}: its timestamped export folder would sit "
        "among the checkpoints' step folders. Export into a folder of its "
        "own, as tf.estimator's exporters did: export_dir_base="
        f"{os.path.join(base, 'export', 'saved_model')!r} "
        "(model_dir/export/<name>).")


def _export_modes(servable: Servable, export_dir_base: Any,
                  receiver_fns: Mapping, assets_extra: Mapping | None,
                  as_text: bool, checkpoint_path: str | None,
                  format: str = "estlab") -> str:  # pylint: disable=redefined-builtin
  """One export directory holding the signatures of every mode given."""
  _check_not_model_dir(servable, export_dir_base)
  if format not in FORMATS:
    raise ValueError(f"format={format!r}; use one of {list(FORMATS)!r}: 'estlab'"
                     " (estlab.export.load, `estlab serve`) or 'tf_saved_model'"
                     " (a TensorFlow SavedModel for TF Serving).")
  if jax.process_count() > 1:
    raise ValueError(
        f"export_saved_model in process {jax.process_index()} of a "
        f"{jax.process_count()}-process jax.distributed run: every process "
        "would write its own export. Export once the run ended, from one "
        "process: estlab.LinearClassifier(..., model_dir=model_dir)"
        ".export_saved_model(...) reads the checkpoint the run wrote.")
  if format == "tf_saved_model":
    return _export_tf(servable, export_dir_base, receiver_fns, assets_extra,
                      as_text, checkpoint_path)
  modules, signatures, description = {}, {}, {}
  variables = step = None
  for mode, receiver_fn in receiver_fns.items():
    receiver = _receiver(receiver_fn)
    if mode == ModeKeys.PREDICT:
      exported, mode_variables, step, section, described = _build(
          servable, receiver, checkpoint_path)
      modules[_format.MODULE] = exported
      description.update(section)
    else:
      exported, mode_variables, step, section, described = _build_eval(
          servable, receiver, checkpoint_path)
      modules[_format.EVAL_MODULE] = exported
      description[_eval.SIGNATURE] = section
    if variables is not None and not _same_variables(variables, mode_variables):
      raise ValueError(f"The {mode!r} model_fn makes other variables than the "
                       "other modes; export the modes separately.")
    variables = mode_variables
    signatures.update(described)
  platforms = next(iter(modules.values())).platforms
  description = {
      "format": _format.FORMAT,
      "format_version": 2 if _format.EVAL_MODULE in modules else 1,
      "estlab_version": __version__, "jax_version": jax.__version__,
      "created": _now(), "model": servable.model,
      "global_step": step, "platforms": list(platforms), **description,
      "signatures": signatures, "checksums": _format.CHECKSUMS}
  path = _write(export_dir_base, modules, variables, description,
                assets_extra, as_text)
  logger.info("Exported %s (global step %d, modes %s) to %s",
              servable.model, step, sorted(receiver_fns), path)
  return path


def _as_servable(source: Any) -> Servable:
  """A ``Servable``, or an estimator's (its ``_servable()``)."""
  return source if isinstance(source, Servable) else source._servable()  # pylint: disable=protected-access


def export_saved_model(servable: Any, export_dir_base: Any,
                       serving_input_receiver_fn: Callable,
                       assets_extra: Mapping | None = None, as_text: bool = False,
                       checkpoint_path: str | None = None,
                       experimental_mode: str = ModeKeys.PREDICT,
                       format: str = "estlab") -> str:  # pylint: disable=redefined-builtin
  """See ``Estimator.export_saved_model``; returns the export directory.

  ``servable``: a ``Servable`` (``Estimator.export_saved_model`` passes its
  own), or an estimator, whose ``_servable()`` is exported. ``format``:
  ``'estlab'`` (``estlab.export.load``, ``estlab serve``) or
  ``'tf_saved_model'``, a TensorFlow SavedModel for TF Serving
  (``estlab.export._tf_saved_model``; needs ``pip install
  "estlab[tensorflow]"``).
  """
  _check_mode(experimental_mode)
  return _export_modes(_as_servable(servable), export_dir_base,
                       {experimental_mode: serving_input_receiver_fn},
                       assets_extra, as_text, checkpoint_path, format)


def experimental_export_all_saved_models(
    servable: Any, export_dir_base: Any, input_receiver_fn_map: Mapping,
    assets_extra: Mapping | None = None, as_text: bool = False,
    checkpoint_path: str | None = None,
    format: str = "estlab") -> str:  # pylint: disable=redefined-builtin
  """See ``Estimator.experimental_export_all_saved_models``: one directory
  with the signatures of every mode given (PREDICT and EVAL). ``servable``
  and ``format``: as ``export_saved_model``'s ('tf_saved_model': PREDICT
  only)."""
  if not isinstance(input_receiver_fn_map, Mapping) or not input_receiver_fn_map:
    raise ValueError(f"input_receiver_fn_map={input_receiver_fn_map!r:.100} must "
                     "be a non-empty dict {ModeKeys.PREDICT: receiver_fn, "
                     "ModeKeys.EVAL: receiver_fn}.")
  for mode in input_receiver_fn_map:
    _check_mode(mode)
  ordered = {m: input_receiver_fn_map[m] for m in _MODES
             if m in input_receiver_fn_map}
  return _export_modes(_as_servable(servable), export_dir_base, ordered,
                       assets_extra, as_text, checkpoint_path, format)

