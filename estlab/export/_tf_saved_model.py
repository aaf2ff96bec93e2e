"""``export_saved_model(format='tf_saved_model')``: a TensorFlow SavedModel.

For TF Serving (or ``tf.saved_model.load``) where estlab is not installed:
the PREDICT-mode ``serve(variables, features)`` that estlab's own export
writes with ``jax.export`` is converted with ``jax2tf.convert`` (native
serialization: the same StableHLO inside an ``XlaCallModule`` op, lowered
for cpu, cuda and tpu, the batch dimension polymorphic) and saved with
``tf.saved_model.save``. The variables are ``tf.Variable``s of the module;
the host step runs as TF ops in each signature (``estlab.export._tf_host``:
feature columns, or a refusal naming the column), and the class names of a
head's ``classes`` are a TF lookup on the ids. Signatures are those of
estlab's own export (``serving_default``, ``predict``, ``classification``,
``regression``: ``estlab.export._signatures``).

What they take is what TF's export of the same receiver takes, so a TF
Serving deployment (its Classify / Regress / Predict APIs, its clients)
crosses over unchanged:

* a parsing receiver (``build_parsing_serving_input_receiver_fn``): one
  ``DT_STRING [-1]`` tensor of serialized ``tf.train.Example``s, named
  ``inputs`` in signatures of method ``tensorflow/serving/classify`` and
  ``.../regress`` and ``examples`` in ``.../predict`` ones, parsed with
  ``tf.io.parse_example`` and the export's feature spec
  (``_tf_host.parse_examples``); the SignatureDefs carry TF's method names
  (``tf.saved_model.save`` writes ``tensorflow/serving/predict`` for every
  signature: ``_set_method_names`` rewrites ``saved_model.pb`` after it);
  and a head's ``class_ids`` is int64, as TF's heads give it;
* a raw receiver: the features as named dense tensors, method
  ``tensorflow/serving/predict`` (TF's Classify / Regress APIs take
  Examples only; TF's own export drops those signatures here).

TensorFlow is an optional extra (``pip install "estlab[tensorflow]"``) and is
imported only here, on that path.

Example:
  >>> path = est.export_saved_model('/tmp/tf', receiver_fn,
  ...                               format='tf_saved_model')  # doctest: +SKIP
  >>> tf.saved_model.load(path).signatures['serving_default'](
  ...     x=tf.constant([[1.5], [3.5]]))                       # doctest: +SKIP
  >>> # a parsing receiver's: serialized Examples, as TF's export takes them
  >>> tf.saved_model.load(path).signatures['predict'](
  ...     examples=tf.constant([example.SerializeToString()]))  # doctest: +SKIP
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from estlab.export import _example_proto, _parsing, _receivers

__all__ = ["require_tensorflow", "write", "EXTRA", "EXAMPLES_INPUT"]

EXTRA = 'pip install "estlab[tensorflow]"'

# The input holding serialized Examples, by method name, as TF's
# ``signature_def_utils`` names it (``classification_signature_def``,
# ``regression_signature_def``; the parsing receiver's ``examples`` tensor in
# ``predict_signature_def``).
EXAMPLES_INPUT = {"tensorflow/serving/classify": "inputs",
                  "tensorflow/serving/regress": "inputs",
                  "tensorflow/serving/predict": "examples"}


def require_tensorflow() -> Any:
  """The ``tensorflow`` module, or an ImportError naming the extra."""
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "export_saved_model(format='tf_saved_model') writes a TensorFlow "
        f"SavedModel and needs TensorFlow, which cannot be imported ({e}). "
        f"Install the optional extra: {EXTRA}; or export with format='estlab' "
        "(the default) and serve it with `estlab serve`.") from None
  return tf


def _polymorphic(abstract: Any) -> Any:
  """jax2tf's shape specs, ``'(b, k0)'``, of the abstract features."""
  return jax.tree.map(
      lambda s: "(" + ", ".join(str(d) for d in s.shape) + ("," if len(
          s.shape) == 1 else "") + ")", abstract)


def _select(serve: Callable, name: str, variables: Any, features: Any) -> dict:
  return serve(variables, features)[name]


def _host_outputs(tf: Any, out: dict, host: Mapping) -> dict:
  """The string outputs estlab's loader adds (class names), as TF ops."""
  for key, op in host.items():
    names = tf.constant(np.asarray(op.get("names", ()), dtype=object), tf.string)
    if op["op"] == "lookup":
      out[key] = tf.gather(names, out[op["source"]])
    elif op["op"] == "decimal":
      out[key] = tf.strings.as_string(out[op["source"]])
    else:  # tile
      like = next(out[k] for k in op["like"] if k in out)
      out[key] = tf.broadcast_to(names, tf.shape(like))
  for key, op in host.items():  # TF's heads give class ids as int64
    source = op.get("source", "")
    if (op["op"] == "lookup" and key.rsplit("/", 1)[-1] == "classes" and
        source.rsplit("/", 1)[-1] == "class_ids" and source in out):
      out[source] = tf.cast(out[source], tf.int64)
  return out


def _signature_fn(tf: Any, converted: Callable, module: Any,
                  model_features: Callable, described: Mapping) -> Callable:
  """``signature(features) -> {output: tensor}``: host step, module, names."""
  def signature(features):
    out = dict(converted(module.params, model_features(features)))
    out = _host_outputs(tf, out, described["host_outputs"])
    return {k: out[k] for k in described["outputs"]}
  return signature


def write(path: str, serve: Callable, variables: dict, abstract: Any,
          section: Mapping, signatures: Mapping, platforms: Sequence[str],
          as_text: bool = False) -> None:
  """Writes the SavedModel into the (new, empty) directory ``path``.

  Args:
    path: where ``saved_model.pb`` and ``variables/`` go.
    serve: ``serve(variables, features) -> {signature: {output: array}}``.
    variables: the model's variables, as numpy.
    abstract: the model features' ``ShapeDtypeStruct``s (symbolic ``b``,
      ``k<i>``), as exported with ``jax.export``.
    section: the export's receiver and transform (``estlab_export.json``).
    signatures: the ``signatures`` of ``estlab_export.json``.
    platforms: what the converted module is lowered for.
    as_text: write ``saved_model.pbtxt`` instead of ``saved_model.pb``.

  Raises:
    UnconvertibleColumnError: (a ValueError) a feature column with no TF ops.
  """
  tf = require_tensorflow()
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  from estlab.export import _tf_host  # pylint: disable=g-import-not-at-top
  inputs = section["receiver"]["inputs"]
  host = _tf_host.TFHostStep(tf, inputs, section["transform"])
  examples = _example_proto.takes_examples(inputs)
  flat_abstract = _receivers.flatten_features(abstract)
  module = tf.Module()
  module.params = tf.nest.map_structure(
      lambda a: tf.Variable(a, trainable=False), variables)
  module.tables = host.tables
  polymorphic = _polymorphic(abstract)

  def model_features(features: dict) -> Any:
    flat = _receivers.flatten_features(host(features))
    return _parsing.unflatten({
        k: tf.cast(flat[k], tf.as_dtype(np.dtype(s.dtype)))
        for k, s in flat_abstract.items()})

  concrete = {}
  for name, described in signatures.items():
    converted = jax2tf.convert(
        functools.partial(_select, serve, name),
        polymorphic_shapes=[None, polymorphic], with_gradient=False,
        native_serialization_platforms=tuple(platforms))

    signature = _signature_fn(tf, converted, module, model_features, described)
    if examples:
      signature, specs = _from_examples(tf, signature, inputs, described)
    else:
      specs = _tf_host.input_specs(tf, inputs)
    function = tf.function(signature, input_signature=[specs], autograph=False)
    setattr(module, f"_signature_{len(concrete)}", function)
    concrete[name] = function.get_concrete_function()
  tf.saved_model.save(module, path, signatures=concrete)
  if examples:
    _set_method_names(path, {name: described["method_name"]
                             for name, described in signatures.items()})
  if as_text:
    _as_text(path)


def _from_examples(tf: Any, signature: Callable, inputs: Mapping,
                   described: Mapping) -> tuple[Callable, dict]:
  """``signature`` taking serialized Examples, and its input spec (TF's)."""
  from estlab.export import _tf_host  # pylint: disable=g-import-not-at-top
  key = EXAMPLES_INPUT[described["method_name"]]

  def from_examples(given):
    return signature(_tf_host.parse_examples(tf, inputs, given[key]))
  return from_examples, {key: tf.TensorSpec([None], tf.string, name=key)}


def _set_method_names(path: str, method_names: Mapping[str, str]) -> None:
  """Gives the SignatureDefs in ``path/saved_model.pb`` TF's method names.

  ``tf.saved_model.save`` names every signature's method
  ``tensorflow/serving/predict``; TF Serving's Classify and Regress APIs take
  only signatures named ``.../classify`` and ``.../regress``. The
  fingerprint (a checksum of ``saved_model.pb``) is written again.
  """
  import os  # pylint: disable=g-import-not-at-top
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow.python.saved_model import fingerprinting_utils  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  binary = os.path.join(path, "saved_model.pb")
  proto = saved_model_pb2.SavedModel()
  with open(binary, "rb") as f:
    proto.ParseFromString(f.read())
  for meta_graph in proto.meta_graphs:
    for name, method_name in method_names.items():
      meta_graph.signature_def[name].method_name = method_name
  with open(binary, "wb") as f:
    f.write(proto.SerializeToString(deterministic=True))
  fingerprinting_utils.write_fingerprint(path)


def _as_text(path: str) -> None:
  """``saved_model.pb`` -> ``saved_model.pbtxt`` (TF's ``as_text=True``)."""
  import os  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  binary = os.path.join(path, "saved_model.pb")
  proto = saved_model_pb2.SavedModel()
  with open(binary, "rb") as f:
    proto.ParseFromString(f.read())
  with open(os.path.join(path, "saved_model.pbtxt"), "w", encoding="utf-8") as f:
    f.write(text_format.MessageToString(proto))
  os.remove(binary)
