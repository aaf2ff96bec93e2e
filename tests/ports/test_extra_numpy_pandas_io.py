"""Port of the input shapes of tensorflow/estimator's own tests
``tensorflow_estimator/python/estimator/inputs/numpy_io_test.py`` and
``pandas_io_test.py``, fed to an Estimator as user programs do.

TF's tests run each ``numpy_input_fn`` / ``pandas_input_fn`` in a session and
check the batches; a user hands the same input_fns to ``train``,
``evaluate`` and ``predict``. Each scenario here takes one of those tests'
inputs (dict features, a single array, an N-d array, a dict of labels, a
DataFrame with an index, batch sizes that do not divide the rows, several
epochs, ``num_epochs=None`` with ``steps``) and trains a linear model with
zero initial weights and plain SGD, so the global step, the evaluation loss
and every prediction are exact functions of the batches the model saw, in
their order; they are compared with TensorFlow 2.15's.
Changes beyond imports (``tf.compat.v1.estimator.inputs`` -> ``estlab.inputs``,
``tf.estimator`` -> ``estlab``):
- the model_fn: ``tf.compat.v1.layers.dense(x, units, use_bias=False,
  kernel_initializer=zeros)`` -> Flax ``nn.Dense(units, use_bias=False,
  kernel_init=zeros)``; ``tf.stack``/``tf.cast``/``tf.reshape``/
  ``tf.square``/``tf.reduce_mean`` -> jnp; ``GradientDescentOptimizer(lr)
  .minimize(loss, global_step)`` -> ``train_op=optax.sgd(lr)`` (JAX).
- ``params["x"] = "array"`` tells the model_fn that ``x`` was one array
  (TF's tests feed it bare; the reference's model_fn takes the same params).
- errors: TF's messages are compared by their key phrase and builtin type.
Reference: ``reference/extra_numpy_pandas_io_tf.py`` (the same scenarios in
TensorFlow 2.15; ``reference/extra_numpy_pandas_io.json``).

Original tests: Copyright 2016 The TensorFlow Authors, Apache License 2.0.
"""
import json
import os

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

import estlab

_REFERENCE = os.path.join(os.path.dirname(__file__), "reference",
                          "extra_numpy_pandas_io.json")
with open(_REFERENCE) as _f:
  REFERENCE = json.load(_f)

numpy_input_fn = estlab.inputs.numpy_input_fn
pandas_input_fn = estlab.inputs.pandas_input_fn


def as_matrix(features, params):
  if params.get("x") != "array":  # x was a dict: features is a dict
    return jnp.stack([jnp.asarray(features[k], jnp.float32) for k in sorted(features)],
                     axis=1)
  x = jnp.asarray(features, jnp.float32)  # x was one array: features is it
  return x.reshape(x.shape[0], -1) if x.ndim > 1 else x[:, None]


def model_fn(features, labels, mode, params):
  x = as_matrix(features, params)
  units = params.get("units", 1)
  pred = nn.Dense(units, use_bias=False, kernel_init=nn.initializers.zeros)(x)
  predictions = {"pred": pred if units > 1 else pred[:, 0]}
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions=predictions)
  if isinstance(labels, dict):
    y = jnp.stack([jnp.asarray(labels[k], jnp.float32) for k in sorted(labels)], axis=1)
  else:
    y = jnp.reshape(jnp.asarray(labels, jnp.float32), (-1, units))
  loss = jnp.mean(jnp.square(pred - y))
  return estlab.EstimatorSpec(mode, loss=loss, train_op=optax.sgd(params["lr"]),
                              predictions=predictions)


def scenario(model_dir, x, y, params, batch_size, num_epochs, steps=None,
             eval_batch=2, pandas=False):
  est = estlab.Estimator(model_fn, model_dir, params=params)
  make = pandas_input_fn if pandas else numpy_input_fn
  est.train(make(x, y, batch_size=batch_size, num_epochs=num_epochs, shuffle=False),
            steps=steps)
  ev = est.evaluate(make(x, y, batch_size=eval_batch, num_epochs=1, shuffle=False))
  out = {"global_step": int(ev["global_step"]),
         "evaluate": {k: float(v) for k, v in ev.items()}}
  preds = list(est.predict(make(x, None, batch_size=eval_batch, num_epochs=1,
                                shuffle=False)))
  out["predict"] = [np.asarray(p["pred"]).tolist() for p in preds]
  batches = list(est.predict(make(x, None, batch_size=eval_batch, num_epochs=1,
                                  shuffle=False), yield_single_examples=False))
  out["predict_batches"] = [np.asarray(b["pred"]).shape[0] for b in batches]
  return out


LR = {"lr": 1e-4}
A, B = np.arange(3) * 1.0, np.arange(32, 35)
X5 = {"a": np.arange(5) * 1.0, "b": np.arange(32, 37)}
INDEX = np.arange(100, 104)
DF = pd.DataFrame({"a": np.arange(4) * 1.0, "b": np.arange(32, 36)}, index=INDEX)

SCENARIOS = {
    # numpy_io_test: testNumpyInputFnWithBatchSizeNotDividedByDataSizeAndMultipleEpochs
    "epochs_3_batch_2": lambda d: scenario(d, {"a": A, "b": B}, np.arange(-32, -29),
                                           LR, 2, 3),
    # testNumpyInputFnWithVeryLargeBatchSizeAndMultipleEpochs
    "batch_128_epochs_2": lambda d: scenario(
        d, {"a": np.arange(2) * 1.0, "b": np.arange(32, 34)}, np.arange(-32, -30),
        LR, 128, 2),
    # testNumpyInputFnWithBatchSizeNotDividedByDataSize; steps= past the end
    "steps_past_end": lambda d: scenario(d, X5, np.arange(-32, -27), LR, 2, 1, steps=10),
    # num_epochs=None with steps
    "repeat_steps_7": lambda d: scenario(d, X5, np.arange(-32, -27), LR, 2, None, steps=7),
    # testNumpyInputFnWithYAsDict
    "y_dict": lambda d: scenario(
        d, {"a": np.arange(4) * 1.0, "b": np.arange(32, 36)},
        {"y1": np.arange(-32, -28), "y2": np.arange(32, 28, -1)},
        {"lr": 1e-4, "units": 2}, 2, 2),
    # testNumpyInputFnWithXIsArray
    "x_array": lambda d: scenario(d, np.arange(4) * 1.0, np.arange(-32, -28),
                                  {"lr": 1e-2, "x": "array"}, 2, 2),
    # testNumpyInputFnWithXIsNDArray
    "x_ndarray": lambda d: scenario(
        d, np.arange(16).reshape(4, 2, 2) * 1.0, np.arange(-48, -32).reshape(4, 4) * 1.0,
        {"lr": 1e-3, "units": 4, "x": "array"}, 2, 2),
    # testNumpyInputFnWithXIsArrayYIsDict
    "x_array_y_dict": lambda d: scenario(d, np.arange(4) * 1.0,
                                         {"y1": np.arange(-32, -28)}, {"lr": 1e-2, "x": "array"},
                                         2, 2),
    # pandas_io_test: a DataFrame with an index, y a Series with the same index
    "pandas": lambda d: scenario(d, DF, pd.Series(np.arange(-32, -28), index=INDEX),
                                 LR, 2, 2, pandas=True),
    "pandas_odd": lambda d: scenario(
        d, pd.DataFrame({"a": np.arange(5) * 1.0, "b": np.arange(32, 37)}),
        pd.Series(np.arange(-32, -27)), LR, 2, 3, pandas=True),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(tmp_path, name):
  got = SCENARIOS[name](str(tmp_path))
  want = REFERENCE[name]
  assert got["global_step"] == want["global_step"]
  assert got["predict_batches"] == want["predict_batches"]
  np.testing.assert_allclose(got["evaluate"]["loss"], want["evaluate"]["loss"], rtol=1e-4)
  np.testing.assert_allclose(got["predict"], want["predict"], rtol=1e-4, atol=1e-4)


def test_global_step_is_a_variable(tmp_path):
  # tf.estimator's tests and users read the step as a variable:
  # est.get_variable_value('global_step') (tf.compat.v1.GraphKeys.GLOBAL_STEP).
  est = estlab.Estimator(model_fn, str(tmp_path), params=LR)
  est.train(numpy_input_fn({"a": A, "b": B}, np.arange(-32, -29), batch_size=2,
                           num_epochs=3, shuffle=False))
  assert "global_step" in est.get_variable_names()
  assert est.get_variable_value("global_step") == REFERENCE["epochs_3_batch_2"]["global_step"]


ERRORS = {
    "shuffle_missing": (lambda: numpy_input_fn({"a": A}, A), "shuffle must be provided"),
    "x_list": (lambda: numpy_input_fn(list(range(4)), np.arange(4), shuffle=False)(),
               "x must be a dict"),
    "x_empty": (lambda: numpy_input_fn({}, np.arange(4), shuffle=False)(),
                "x cannot be an empty"),
    "length_mismatch": (lambda: numpy_input_fn({"a": A, "b": B}, np.arange(10),
                                               shuffle=False)(), "mismatched"),
    "duplicate_keys": (lambda: numpy_input_fn({"a": A, "b": B}, {"y1": A, "a": A, "b": B},
                                              shuffle=False)(), "duplicate keys"),
    "pandas_index_mismatch": (lambda: pandas_input_fn(
        DF, pd.Series(np.arange(4), index=np.arange(4)), shuffle=False)(),
                              "Index for x and y are mismatched"),
    "pandas_shuffle_missing": (lambda: pandas_input_fn(DF, None), "shuffle must be provided"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors(name):
  fn, phrase = ERRORS[name]
  want = REFERENCE["errors"][name]
  with pytest.raises({"ValueError": ValueError, "TypeError": TypeError}[want["type"]]) as e:
    fn()
  assert phrase.lower() in str(e.value).lower(), (str(e.value), want["message"])
