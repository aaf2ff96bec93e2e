"""Export and serving: tf.estimator's ``export_saved_model``, on ``jax.export``.

``Estimator.export_saved_model(export_dir_base, serving_input_receiver_fn)``
writes a servable directory; ``estlab.export.load(path)`` runs it in any
process, without the code that defined the model (no pickle anywhere).
Where TF wrote a SavedModel graph, estlab writes a ``jax.export`` module
(StableHLO, lowered for cpu, cuda and tpu, with a symbolic batch dimension)
and the JSON of the host steps (parsing, feature column encoding, class
names), which the loader runs with numpy and ``estlab.feature_column``.
The exporter reads an estimator through a small protocol, the ``Servable``
it hands over (``estlab.export._servable``): export never imports the
estimator. The outputs a model_fn returns for serving (``PredictOutput``,
...) are defined below the heads (``estlab._export_outputs``) and
re-exported here.

Layout of ``<export_dir_base>/<unix timestamp>/`` (written as
``temp-<timestamp>-<pid>-<pid namespace>-<host>`` and renamed when complete,
so a crash never leaves an export that looks whole; ``load`` ignores
``temp-*``, and the next export there removes those of dead writers:
``_temp_dirs``)::

  model.jaxexport     (PREDICT) jax.export.Exported.serialize() of serve(variables,
                      features) -> {signature: {output: array}}; inputs:
                      the variables (as below) and the model_fn's features,
                      batch dimension ``b`` symbolic (unless a
                      default_batch_size was given), the id width of each
                      host-encoded categorical column symbolic (``k0``, ...)
  model.mlir          its StableHLO text (as_text=True only)
  eval.jaxexport      (EVAL) evaluate(variables, features, labels) ->
                      {'eval': {'loss': f32[], <metric>: f32[]}}: the EVAL
                      model_fn on one batch, each eval_metric_ops metric
                      computed on it; batch ``b`` shared with the labels
  eval.mlir           its StableHLO text (as_text=True only)
  variables/          Orbax StandardSave of {'params': ..., <collections>};
                      restored without a target it is the module's first input
  assets.extra/       copies of assets_extra ({relative path: source file})
  estlab_export.sha256  `sha256sum` lines of every file, checked by ``load``
                      before anything is read (``_integrity``; a damaged
                      file or a path out of the export: DamagedExportError)
  estlab_export.json  {format, format_version (1; 2 when it
                      holds EVAL), estlab_version,
                      jax_version, created, model, global_step, platforms,
                      receiver: {kind: 'parsing' | 'raw', default_batch_size,
                                 [tensor: the input a TensorServingInputReceiver's
                                 model_fn gets bare; the module takes {tensor: array}],
                                 inputs: {name: {kind: 'fixed' | 'varlen' |
                                 'array', dtype, shape, default_value}}},
                      transform: {kind: 'feature_columns', feature_columns:
                                  [column.spec(), ...]} | {kind: 'batch_size',
                                  key} | {kind: 'none'},
                      model_inputs: {name: {dtype, shape}},
                      (receiver, transform and model_inputs: PREDICT's, absent
                      in an EVAL-only export)
                      eval: {module: 'eval.jaxexport', receiver, transform,
                             model_inputs, labels: {'labels' | 'labels/<k>':
                             {kind: 'array', dtype, shape} | {kind: 'head',
                             dtype, shape, vocabulary, range, integer}}},
                      signatures: {name: {method_name, [mode: 'eval'],
                                   inputs, outputs: {key: {dtype, shape}},
                                   device_outputs, host_outputs: {key: op}}},
                      checksums: 'estlab_export.sha256'}

Signatures are TF's: ``serving_default``, ``predict`` (always), and
``classification`` / ``regression`` where the head has them (a binary
classifier has both, ``regression`` serving its ``logistic``); a model_fn
sets its own through ``EstimatorSpec(export_outputs=...)``.

PREDICT and EVAL are exported (TRAIN is a ValueError): ``experimental_export_
all_saved_models({ModeKeys.PREDICT: serving_fn, ModeKeys.EVAL: eval_fn})``
writes one directory holding both modules. EVAL takes a
``SupervisedInputReceiver`` (``build_raw_supervised_input_receiver_fn
(features, labels)``; features raw or parse specs) and serves TF's ``eval``
signature (method ``tensorflow/supervised/eval``): ``sig({...features...,
'labels': [...]})`` returns ``loss`` and every ``eval_metric_ops`` metric of
that batch (not padded), as ``Estimator.evaluate`` on it. Labels reach a
model_fn as they are; a premade's head encodes them on load from the JSON
(shape, dtype, ``label_vocabulary``) for Regression, BinaryClass and
MultiClass heads without ``weight_column``; other heads are a ValueError.

``export_saved_model(..., format='tf_saved_model')`` writes a TensorFlow
SavedModel instead, for TF Serving (``estlab.export._tf_saved_model``: jax2tf,
the same signatures, feature columns as TF ops; a parsing receiver's take
serialized ``tf.train.Example``s with TF's input and method names; needs
``pip install "estlab[tensorflow]"``).

A numeric column's ``normalizer_fn`` runs inside the module; a
bucketized column of a normalized source runs Python on the host and cannot
be exported (a clear error names it).

Example:
  >>> import estlab, numpy as np
  >>> col = estlab.feature_column.numeric_column('x')
  >>> est = estlab.LinearClassifier([col], config=estlab.RunConfig(progress_bar=False))
  >>> est = est.train(estlab.inputs.numpy_input_fn(
  ...     {'x': np.array([1., 2., 3., 4.])}, np.array([1, 1, 0, 0]),
  ...     batch_size=4, num_epochs=None, shuffle=False), steps=50)   # doctest: +SKIP
  >>> path = est.export_saved_model('/tmp/export', estlab.export.
  ...     build_parsing_serving_input_receiver_fn(
  ...         estlab.feature_column.make_parse_example_spec([col])))   # doctest: +SKIP
  >>> estlab.export.load(path).signatures['predict']({'x': [1.5, 3.5]})  # doctest: +SKIP
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from estlab._export_outputs import (ClassificationOutput, EvalOutput,
                                    ExportOutput, PredictOutput,
                                    RegressionOutput)
from estlab.export._exporters import (BestExporter, Exporter, FinalExporter,
                                      LatestExporter)
from estlab.export._format import (DamagedExportError, NotAnExportError,
                                   ServingInputError, ServingInputTypeError)
from estlab.export._receivers import (ArraySpec, ServingInputReceiver,
                                      SupervisedInputReceiver,
                                      TensorServingInputReceiver,
                                      build_parsing_serving_input_receiver_fn,
                                      build_raw_serving_input_receiver_fn,
                                      build_raw_supervised_input_receiver_fn)
from estlab.feature_column import (FixedLenFeature, VarLenFeature,
                                   make_parse_example_spec)

# Loaded on first use: the loader imports JAX and Orbax, the exporter more.
_LAZY = {"load": "estlab.export._loader", "Imported": "estlab.export._loader",
         "Signature": "estlab.export._loader",
         "export_saved_model": "estlab.export._exporter",
         "experimental_export_all_saved_models": "estlab.export._exporter"}

__all__ = [
    "load", "Imported", "Signature", "ServingInputReceiver", "ArraySpec",
    "SupervisedInputReceiver", "build_parsing_serving_input_receiver_fn",
    "build_raw_serving_input_receiver_fn",
    "build_raw_supervised_input_receiver_fn", "make_parse_example_spec",
    "FixedLenFeature", "VarLenFeature", "ExportOutput", "PredictOutput",
    "ClassificationOutput", "RegressionOutput", "EvalOutput",
    "TensorServingInputReceiver", "ServingInputError",
    "ServingInputTypeError", "NotAnExportError", "DamagedExportError",
    "export_saved_model",
    "experimental_export_all_saved_models", "Exporter", "LatestExporter",
    "FinalExporter", "BestExporter",
]


def __getattr__(name: str):
  if name in _LAZY:
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'estlab.export' has no attribute {name!r}")


def __dir__():
  return __all__


if TYPE_CHECKING:
  from estlab.export._exporter import (experimental_export_all_saved_models,
                                       export_saved_model)
  from estlab.export._loader import Imported, Signature, load
