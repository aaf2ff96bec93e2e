"""Serving input receivers: what a request to an export holds, as TF's.

``export_saved_model(export_dir_base, serving_input_receiver_fn)`` calls the
receiver fn once; the ``ServingInputReceiver`` it returns describes the inputs
of every signature. Two kinds, as TF's two builders:

* parsing (``build_parsing_serving_input_receiver_fn``): raw feature values
  per example, strings included, or serialized ``tf.train.Example`` protos
  as TF's take (``{'examples': [...]}``), parsed with a ``FixedLenFeature`` /
  ``VarLenFeature`` spec, then encoded on the host by the estimator's
  feature columns;
* raw (``build_raw_serving_input_receiver_fn``): numeric arrays the model_fn
  reads as they are (for a premade estimator: already encoded, as
  ``estlab.feature_column.encode`` returns them).

A ``TensorServingInputReceiver`` (TF's) gives the model_fn one array, not a
dict: a request still names it (its one receiver tensor, ``'input'`` by
default), and the exported function passes the bare array on.

An EVAL export takes a ``SupervisedInputReceiver`` (TF's): features of either
kind plus labels given as arrays (``build_raw_supervised_input_receiver_fn``).

Example:
  >>> from estlab import feature_column as fc
  >>> spec = fc.make_parse_example_spec([fc.numeric_column('x')])
  >>> receiver = build_parsing_serving_input_receiver_fn(spec)()
  >>> receiver.kind, sorted(receiver.features)
  ('parsing', ['x'])
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import numpy as np

from estlab.feature_column._base import (FixedLenFeature, VarLenFeature,
                                         canonical_dtype)

__all__ = ["ArraySpec", "ServingInputReceiver", "TensorServingInputReceiver",
           "SupervisedInputReceiver",
           "build_parsing_serving_input_receiver_fn",
           "build_raw_serving_input_receiver_fn",
           "build_raw_supervised_input_receiver_fn", "flatten_features",
           "describe_features", "describe_labels"]

_PARSE_SPECS = (FixedLenFeature, VarLenFeature)


@dataclasses.dataclass(frozen=True)
class ArraySpec:
  """A raw input: ``shape`` (first dimension the batch, None for any) and dtype."""

  shape: tuple
  dtype: str


def flatten_features(features: Mapping, prefix: str = "") -> dict[str, Any]:
  """Nested dicts as one dict keyed ``'outer/inner'`` (encoded columns nest)."""
  flat = {}
  for key, value in features.items():
    if not isinstance(key, str) or not key or "/" in key:
      raise ValueError(f"Feature names must be non-empty strings without '/'; "
                       f"got {key!r}.")
    if isinstance(value, Mapping):
      flat.update(flatten_features(value, f"{prefix}{key}/"))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _array_spec(name: str, value: Any, batch: int | None,
                strings: bool = False) -> ArraySpec:
  if isinstance(value, ArraySpec):
    shape, dtype = value.shape, value.dtype
  elif hasattr(value, "shape") and hasattr(value, "dtype"):
    shape, dtype = tuple(value.shape), value.dtype
  else:
    value = np.asarray(value)
    shape, dtype = value.shape, value.dtype
  if not shape:
    raise ValueError(f"Raw feature {name!r} is a scalar; give an array whose "
                     "first dimension is the batch, e.g. np.zeros((1, 3)).")
  if isinstance(dtype, np.dtype) and dtype.kind in "USO":  # numpy text arrays
    dtype = "string"
  dtype = canonical_dtype(dtype, name)
  if dtype == "string" and not strings:
    raise TypeError(
        f"Raw feature {name!r} holds strings; strings cannot enter the exported"
        " module. Use build_parsing_serving_input_receiver_fn (the estimator's "
        "feature columns encode them on the host), or encode them first.")
  return ArraySpec((batch,) + tuple(int(d) for d in shape[1:]), dtype)


class ServingInputReceiver:
  """The inputs of an export, as ``tf.estimator.export.ServingInputReceiver``.

  Args:
    features: ``{name: FixedLenFeature | VarLenFeature}`` (a parsing
      receiver: values parsed per example, then encoded by the estimator's
      feature columns) or ``{name: array | jax.ShapeDtypeStruct | ArraySpec}``
      (a raw receiver: arrays the model_fn reads; the first dimension is the
      batch). Nested dicts of arrays are allowed and named ``'outer/inner'``.
    receiver_tensors: what a request holds; must be None or name the same
      features. For parse specs also TF's ``{'examples': serialized}`` (or
      ``'inputs'``): a parsing export takes both the features and
      serialized ``tf.train.Example`` protos under that name.
    receiver_tensors_alternatives: not supported; must be None.
    default_batch_size: a fixed batch size; None takes any.

  Raises:
    ValueError: no features, a mix of parse specs and arrays, or
      receiver_tensors naming other features.
    TypeError: a raw feature holds strings.
  """

  def __init__(self, features: Mapping, receiver_tensors: Any = None,
               receiver_tensors_alternatives: Any = None, *,
               default_batch_size: int | None = None):
    if not isinstance(features, Mapping) or not features:
      raise ValueError(f"ServingInputReceiver(features={features!r:.100}) needs "
                       "a non-empty dict of feature name -> spec.")
    if receiver_tensors_alternatives is not None:
      raise ValueError("receiver_tensors_alternatives are not supported; export "
                       "one receiver (signatures share its inputs).")
    if default_batch_size is not None and (
        not isinstance(default_batch_size, int) or default_batch_size < 1):
      raise ValueError(f"default_batch_size={default_batch_size!r} must be None "
                       "(any batch size) or an int >= 1.")
    parsing = [isinstance(v, _PARSE_SPECS) for v in features.values()]
    if any(parsing):
      if not all(parsing):
        mixed = sorted(k for k, p in zip(features, parsing) if not p)
        raise ValueError(
            f"features mix parse specs and arrays ({mixed!r} are not "
            "FixedLenFeature/VarLenFeature); use one kind of receiver.")
      self.kind = "parsing"
      self.features = {str(k): v for k, v in features.items()}
    else:
      self.kind = "raw"
      self.features = {k: _array_spec(k, v, default_batch_size)
                       for k, v in flatten_features(features).items()}
    serialized = (self.kind == "parsing" and
                  isinstance(receiver_tensors, Mapping) and
                  len(receiver_tensors) == 1 and
                  next(iter(receiver_tensors)) in ("examples", "inputs"))
    if receiver_tensors is not None and not serialized and (
        not isinstance(receiver_tensors, Mapping) or
        set(flatten_features(receiver_tensors)) != set(self.features)):
      raise ValueError(
          f"receiver_tensors={receiver_tensors!r:.100} must be None or name the "
          f"features {sorted(self.features)!r}: a request holds the features"
          " (with parse specs, {'examples': serialized} too: TF's serialized "
          "tf.train.Examples).")
    self.receiver_tensors = self.features
    self.receiver_tensors_alternatives = None
    self.default_batch_size = default_batch_size

  def __repr__(self) -> str:
    return (f"ServingInputReceiver(kind={self.kind!r}, features="
            f"{sorted(self.features)!r})")


SINGLE_RECEIVER_NAME = "input"  # TF's name of a receiver tensor given bare


class TensorServingInputReceiver(ServingInputReceiver):
  """Inputs of an export whose model_fn takes one array, as TF's.

  ``tf.estimator.export.TensorServingInputReceiver``: a ``ServingInputReceiver``
  always gives the model_fn a dict of features; this one gives it the bare
  array (for model_fns trained with ``numpy_input_fn(x=array)``, which feeds
  the array itself). A request holds that array under the receiver tensor's
  name: ``'input'`` (TF's default) unless ``receiver_tensors`` names it.

  Example:
    >>> import numpy as np
    >>> r = TensorServingInputReceiver(np.zeros((1, 3), np.float32),
    ...                                {'pixels': np.zeros((1, 3), np.float32)})
    >>> r.features, list(r.receiver_tensors)
    (ArraySpec(shape=(None, 3), dtype='float32'), ['pixels'])

  Args:
    features: the one feature: an array, ``jax.ShapeDtypeStruct`` or
      ``ArraySpec`` (raw: the first dimension is the batch), or a numeric
      ``FixedLenFeature`` (parsed from one value, or list of values, per
      example).
    receiver_tensors: the request's name for it: None or an array (named
      ``'input'``), or a dict of one ``{name: anything}``.
    receiver_tensors_alternatives: not supported; must be None.
    default_batch_size: a fixed batch size; None takes any.

  Attributes:
    features: the one feature's spec (``ArraySpec`` or ``FixedLenFeature``).
    receiver_tensors: ``{name: that spec}``: what a request holds.
    feature_key: that name.

  Raises:
    ValueError: features is a dict (use ``ServingInputReceiver``) or a
      ``VarLenFeature``; receiver_tensors name more than one input.
    TypeError: a raw feature holds strings.
  """

  def __init__(self, features: Any, receiver_tensors: Any = None,
               receiver_tensors_alternatives: Any = None, *,
               default_batch_size: int | None = None):
    if features is None or isinstance(features, Mapping):
      raise ValueError(
          f"TensorServingInputReceiver(features={features!r:.100}) takes one "
          "array (or ArraySpec / FixedLenFeature), not a dict; for a dict of "
          "features use ServingInputReceiver.")
    if isinstance(features, VarLenFeature):
      raise ValueError(
          f"TensorServingInputReceiver(features={features!r}): a model_fn "
          "cannot take a variable-length feature as one array; give a "
          "FixedLenFeature or an array.")
    if receiver_tensors is None or not isinstance(receiver_tensors, Mapping):
      key = SINGLE_RECEIVER_NAME
    elif len(receiver_tensors) == 1 and isinstance(
        next(iter(receiver_tensors)), str):
      key = next(iter(receiver_tensors))
    else:
      raise ValueError(
          f"receiver_tensors={receiver_tensors!r:.100} must name the one "
          "input a request holds: None (named 'input') or {name: array}.")
    super().__init__({key: features}, None, receiver_tensors_alternatives,
                     default_batch_size=default_batch_size)
    if self.kind == "parsing" and (
        canonical_dtype(features.dtype, key) == "string"):
      raise TypeError(
          f"TensorServingInputReceiver(features={features!r}): strings cannot"
          " reach a model_fn as an array; give a numeric FixedLenFeature, or "
          "use a premade estimator's parsing receiver.")
    self.receiver_tensors = dict(self.features)
    self.feature_key = key
    self.features = self.receiver_tensors[key]

  def __repr__(self) -> str:
    return (f"TensorServingInputReceiver(kind={self.kind!r}, "
            f"{self.feature_key!r}: {self.features!r})")


def describe_features(receiver: ServingInputReceiver) -> dict[str, dict]:
  """The receiver's inputs as JSON: ``{name: {kind, dtype, shape, ...}}``.

  The inputs are the ``receiver_tensors``: the features of a
  ``ServingInputReceiver``, the one named input of a
  ``TensorServingInputReceiver``.

  ``shape`` is per request: the batch first (None: any), then the values of
  one example (None: any number, for ``VarLenFeature``).
  """
  batch = receiver.default_batch_size
  out = {}
  for name, spec in sorted(receiver.receiver_tensors.items()):
    if isinstance(spec, FixedLenFeature):
      shape = tuple(spec.shape) if isinstance(spec.shape, (tuple, list)) else (
          spec.shape,)
      out[name] = {"kind": "fixed", "dtype": canonical_dtype(spec.dtype, name),
                   "shape": [batch, *shape],
                   "default_value": _json(spec.default_value)}
      if any(not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"FixedLenFeature {name!r} has shape {spec.shape!r}; "
                         "dimensions must be ints >= 1 (use VarLenFeature for "
                         "any number of values).")
      if spec.default_value is not None and np.size(spec.default_value) not in (
          1, math.prod(shape)):
        raise ValueError(f"FixedLenFeature {name!r}: default_value "
                         f"{spec.default_value!r} does not fit shape {shape!r}.")
    elif isinstance(spec, VarLenFeature):
      out[name] = {"kind": "varlen", "dtype": canonical_dtype(spec.dtype, name),
                   "shape": [batch, None]}
    else:
      out[name] = {"kind": "array", "dtype": spec.dtype, "shape": list(spec.shape)}
  return out


def _json(value: Any) -> Any:
  if isinstance(value, (tuple, list)):
    return [_json(v) for v in value]
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  return value


def build_parsing_serving_input_receiver_fn(
    feature_spec: Mapping[str, Any], default_batch_size: int | None = None
    ) -> Callable[[], ServingInputReceiver]:
  """A receiver fn parsing raw feature values with ``feature_spec``, as TF's.

  A request holds, per feature, one value per example (a list of values per
  example for a ``VarLenFeature``, or for a ``FixedLenFeature`` of more than
  one value), or, as TF's, serialized ``tf.train.Example`` protos:
  ``signatures['predict'](examples=[example.SerializeToString(), ...])``,
  ``{"instances": [{"b64": ...}]}`` over REST. The export parses them with the saved spec and encodes them
  with the estimator's feature columns on the host: vocabularies, hashing and
  buckets included, strings too.

  Example:
    >>> from estlab import feature_column as fc
    >>> fn = build_parsing_serving_input_receiver_fn(
    ...     fc.make_parse_example_spec([fc.numeric_column('x')]))
    >>> fn().features['x']
    FixedLenFeature(shape=(1,), dtype='float32', default_value=None)

  Args:
    feature_spec: ``{name: FixedLenFeature | VarLenFeature}``, as
      ``estlab.feature_column.make_parse_example_spec`` returns.
    default_batch_size: a fixed batch size; None (the default) takes any.

  Raises:
    ValueError: the spec is empty or holds something else.
  """
  if not isinstance(feature_spec, Mapping) or not feature_spec:
    raise ValueError(f"feature_spec={feature_spec!r:.100} must be a non-empty "
                     "dict; build it with estlab.feature_column."
                     "make_parse_example_spec(feature_columns).")
  for name, spec in feature_spec.items():
    if not isinstance(spec, _PARSE_SPECS):
      raise ValueError(
          f"feature_spec[{name!r}] = {spec!r:.100} is not an estlab "
          "FixedLenFeature or VarLenFeature; build the spec with "
          "estlab.feature_column.make_parse_example_spec(feature_columns).")
  spec = dict(feature_spec)

  def serving_input_receiver_fn() -> ServingInputReceiver:
    return ServingInputReceiver(spec, default_batch_size=default_batch_size)
  return serving_input_receiver_fn


def build_raw_serving_input_receiver_fn(
    features: Mapping[str, Any], default_batch_size: int | None = None
    ) -> Callable[[], ServingInputReceiver]:
  """A receiver fn taking arrays the model_fn reads as they are, as TF's.

  Each feature keeps its dtype and the shape after its first dimension; the
  first dimension becomes the batch (any size, or ``default_batch_size``).
  For a premade estimator the arrays are the encoded features
  (``estlab.feature_column.encode``); to send raw values, strings included,
  use ``build_parsing_serving_input_receiver_fn``.

  Example:
    >>> import numpy as np
    >>> fn = build_raw_serving_input_receiver_fn({'x': np.zeros((1, 3), np.float32)})
    >>> fn().features['x']
    ArraySpec(shape=(None, 3), dtype='float32')

  Args:
    features: ``{name: array | jax.ShapeDtypeStruct | ArraySpec}``; nested
      dicts are allowed.
    default_batch_size: a fixed batch size; None (the default) takes any.

  Raises:
    TypeError: a feature holds strings.
  """
  receiver = ServingInputReceiver(features, default_batch_size=default_batch_size)

  def serving_input_receiver_fn() -> ServingInputReceiver:
    return receiver
  return serving_input_receiver_fn


class SupervisedInputReceiver(ServingInputReceiver):
  """Features and labels of an EVAL export, as TF's ``SupervisedInputReceiver``.

  Args:
    features: as ``ServingInputReceiver`` (parse specs, or raw arrays).
    labels: an array (or ``jax.ShapeDtypeStruct`` / ``ArraySpec``), first
      dimension the batch, or a dict of them: labels as the input_fn yields
      them. A request to the ``eval`` signature holds them under ``'labels'``.
    receiver_tensors: must be None or name the features and ``'labels'``.
    default_batch_size: a fixed batch size; None takes any.

  Raises:
    ValueError: no labels, or a feature named ``'labels'``.
    TypeError: raw features or labels hold strings.
  """

  def __init__(self, features: Mapping, labels: Any, receiver_tensors: Any = None,
               *, default_batch_size: int | None = None):
    if labels is None or (isinstance(labels, Mapping) and not labels):
      raise ValueError("SupervisedInputReceiver needs labels (an array, or a "
                       "dict of arrays); for serving use ServingInputReceiver.")
    if LABELS in features:
      raise ValueError(f"A feature is named {LABELS!r}, the key of the labels in"
                       " an eval request; rename the feature.")
    if receiver_tensors is not None and isinstance(receiver_tensors, Mapping):
      receiver_tensors = {k: v for k, v in receiver_tensors.items()
                          if k != LABELS}
    super().__init__(features, receiver_tensors,
                     default_batch_size=default_batch_size)
    if isinstance(labels, Mapping):
      self.labels = {k: _array_spec(f"labels/{k}", v, default_batch_size, True)
                     for k, v in flatten_features(labels).items()}
    else:  # strings allowed: a head's label_vocabulary encodes them on load
      self.labels = _array_spec(LABELS, labels, default_batch_size, True)

  def __repr__(self) -> str:
    return (f"SupervisedInputReceiver(kind={self.kind!r}, features="
            f"{sorted(self.features)!r}, labels={self.labels!r})")


LABELS = "labels"  # the key of the labels in an eval request


def describe_labels(receiver: SupervisedInputReceiver) -> dict[str, dict]:
  """The receiver's labels as JSON inputs: ``{'labels' | 'labels/<k>': ...}``."""
  labels = receiver.labels
  if isinstance(labels, ArraySpec):
    labels = {LABELS: labels}
  else:
    labels = {f"{LABELS}/{k}": v for k, v in labels.items()}
  return {name: {"kind": "array", "dtype": spec.dtype, "shape": list(spec.shape)}
          for name, spec in sorted(labels.items())}


def build_raw_supervised_input_receiver_fn(
    features: Mapping[str, Any], labels: Any,
    default_batch_size: int | None = None
    ) -> Callable[[], SupervisedInputReceiver]:
  """A receiver fn for an EVAL export taking arrays as they are, as TF's.

  Features are raw arrays (as ``build_raw_serving_input_receiver_fn``: for a
  premade estimator, already encoded) or parse specs; labels are arrays as
  the input_fn yields them (an estimator's head still encodes them on load:
  a ``label_vocabulary`` maps names to ids).

  Example:
    >>> import numpy as np
    >>> fn = build_raw_supervised_input_receiver_fn(
    ...     {'x': np.zeros((1, 3), np.float32)}, np.zeros((1,), np.float32))
    >>> fn().labels
    ArraySpec(shape=(None,), dtype='float32')

  Args:
    features: ``{name: array | ArraySpec | FixedLenFeature | ...}``.
    labels: an array (or a dict of arrays), first dimension the batch.
    default_batch_size: a fixed batch size; None (the default) takes any.
  """
  receiver = SupervisedInputReceiver(features, labels,
                                     default_batch_size=default_batch_size)

  def supervised_input_receiver_fn() -> SupervisedInputReceiver:
    return receiver
  return supervised_input_receiver_fn
