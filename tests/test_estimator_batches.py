"""How the Estimator feeds batches: encoded tables, padding, compiling ahead."""
import threading

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from estlab._engine.host_step import HostStep
from tests.premade import _data

CONFIG = dict(progress_bar=False, tf_random_seed=0, save_checkpoints_steps=None)


class _CountingClassifier(estlab.LinearClassifier):
  """Counts the host encodings (rows, mode) the engine asks for."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.encoded = []

  def _encode(self, features, labels, mode):
    self.encoded.append((len(next(iter(features.values()))), mode))
    return super()._encode(features, labels, mode)


def _classifier(cls=estlab.LinearClassifier, tmp_path=None, **kwargs):
  linear, _ = _data.columns()
  return cls(linear, model_dir=tmp_path, config=estlab.RunConfig(**CONFIG),
             **kwargs)


def test_an_array_input_fn_is_encoded_once_per_table_and_mode(tmp_path):
  features, labels = _data.table(200)
  est = _classifier(_CountingClassifier, tmp_path)
  train_fn = estlab.inputs.numpy_input_fn(features, labels["binary"],
                                          batch_size=32, num_epochs=None,
                                          shuffle=True, seed=0)
  eval_fn = _data.input_fn(features, labels["binary"], batch_size=32)
  est.train(train_fn, steps=10).train(train_fn, steps=10)
  est.evaluate(eval_fn)
  est.evaluate(eval_fn)
  list(est.predict(eval_fn))
  # The first call prepares its first batch's rows directly (the first step
  # need not wait for the table), the whole table once, in the background.
  assert est.encoded == [(32, "train"), (200, "train"), (200, "eval"),
                         (200, "infer")]


def test_generator_input_fns_are_encoded_in_growing_chunks(tmp_path):
  features, labels = _data.table(64)
  est = _classifier(_CountingClassifier, tmp_path)
  est.train(lambda: [(features, labels["binary"])] * 7)
  # The first batch alone (the first step waits for nothing more), then 2
  # and 4 batches joined: premade estimators encode up to 4096 rows at once.
  assert est.encoded == [(64, "train"), (128, "train"), (256, "train")]
  est.evaluate(lambda: [(features, labels["binary"])] * 2, name="gen")
  assert est.encoded[3:] == [(64, "eval"), (64, "eval")]


_ON_CPU = jax.default_backend() == "cpu"


@pytest.mark.parametrize("prefetch_batches,in_thread", [
    (None, not _ON_CPU), (0, False), (2, True)])
def test_generator_input_is_read_inline_on_the_cpu_unless_asked(
    tmp_path, prefetch_batches, in_thread):
  # None: inline on the CPU, a prefetch thread on an accelerator.
  features, labels = _data.table(16)
  readers = []

  def input_fn():
    for _ in range(6):
      readers.append(threading.current_thread())
      yield features, labels["binary"]

  linear, _ = _data.columns()
  est = estlab.LinearClassifier(linear, model_dir=tmp_path, config=estlab.RunConfig(
      **CONFIG, prefetch_batches=prefetch_batches))
  est.train(input_fn)
  assert len(readers) == 6
  read_here = [t is threading.current_thread() for t in readers]
  assert read_here == [not in_thread] * 6


def test_a_custom_estimator_transforms_batch_by_batch(tmp_path):
  seen = []

  def counting(features, labels, mode):
    seen.append(len(features["x"]))
    return features, labels

  class Counting(estlab.Estimator):
    _host = HostStep(transform=counting)

  def model_fn(features, labels, mode):
    pred = nn.Dense(1)(features["x"])[:, 0]
    return estlab.EstimatorSpec(mode, predictions=pred,
                                loss=jnp.mean((pred - labels) ** 2),
                                train_op=optax.sgd(0.1))
  est = Counting(model_fn, model_dir=tmp_path,
                 config=estlab.RunConfig(**CONFIG))
  batch = ({"x": np.ones((8, 2), np.float32)}, np.zeros(8, np.float32))
  est.train(lambda: [batch] * 4)
  assert seen == [8] * 4


def test_training_on_a_refilled_buffer_equals_training_on_fresh_batches(
    tmp_path):
  features, labels = _data.table(96)
  y = labels["binary"]

  def fresh():
    for start in range(0, 96, 16):
      yield ({k: v[start:start + 16].copy() for k, v in features.items()},
             y[start:start + 16].copy())

  def refilled():  # one buffer per feature, overwritten for every batch
    buffers = ({k: v[:16].copy() for k, v in features.items()}, y[:16].copy())
    for start in range(0, 96, 16):
      for k, v in features.items():
        buffers[0][k][:] = v[start:start + 16]
      buffers[1][:] = y[start:start + 16]
      yield buffers
  a = _classifier(tmp_path=tmp_path / "fresh").train(fresh)
  b = _classifier(tmp_path=tmp_path / "refilled").train(refilled)
  # Bit for bit on the CPU; a GPU's scatter-adds (atomics) may differ in
  # the last ulp from run to run, where batches mixed up would differ a lot.
  rtol = 0 if _ON_CPU else 1e-5
  for name in a.get_variable_names():
    np.testing.assert_allclose(a.get_variable_value(name),
                               b.get_variable_value(name), rtol=rtol)


def test_training_on_encoded_table_rows_equals_encoding_each_batch(tmp_path):
  features, labels = _data.table(96)
  y = labels["binary"]
  table_est = _classifier(tmp_path=tmp_path / "table")
  table_est.train(_data.input_fn(features, y, batch_size=32, epochs=2))
  batch_est = _classifier(tmp_path=tmp_path / "batches")

  def batches():  # the same batches, from a generator: encoded one by one
    for _ in range(2):
      for start in range(0, 96, 32):
        yield ({k: v[start:start + 32] for k, v in features.items()},
               y[start:start + 32])
  batch_est.train(batches)
  for name in table_est.get_variable_names():
    np.testing.assert_allclose(table_est.get_variable_value(name),
                               batch_est.get_variable_value(name), rtol=1e-6)


def test_a_short_last_eval_batch_is_padded_and_masked_not_recompiled(tmp_path):
  features, labels = _data.table(100)
  y = labels["binary"]
  est = _classifier(tmp_path=tmp_path)
  est.train(_data.input_fn(features, y, batch_size=32, epochs=3))
  padded = est.evaluate(_data.input_fn(features, y, batch_size=32))  # 32,32,32,4
  assert est._run().steps.traces["eval_step"] == 1
  whole = est.evaluate(_data.input_fn(features, y, batch_size=100), name="one")
  for key in ("accuracy", "auc", "average_loss", "label/mean", "prediction/mean",
              "precision", "recall"):
    np.testing.assert_allclose(padded[key], whole[key], rtol=2e-5, err_msg=key)


def test_the_padded_eval_loss_is_the_mean_of_the_real_batch_losses(tmp_path):
  features, labels = _data.table(100)
  y = labels["binary"]
  est = _classifier(tmp_path=tmp_path)
  est.train(_data.input_fn(features, y, batch_size=32, epochs=3))
  padded = est.evaluate(_data.input_fn(features, y, batch_size=32))
  losses = [est.evaluate(_data.input_fn(
      {k: v[s:s + 32] for k, v in features.items()}, y[s:s + 32],
      batch_size=32), name=f"b{s}")["loss"] for s in (0, 32, 64, 96)]
  np.testing.assert_allclose(padded["loss"], np.mean(losses), rtol=2e-5)


def test_the_valid_rows_mask_zeroes_padded_rows_in_head_metrics_and_loss():
  head = estlab.heads.BinaryClassHead()
  logits = jnp.array([[2.0], [-1.0], [5.0], [5.0]])
  labels = jnp.array([[1], [0], [0], [0]])
  mask = {estlab.spec.VALID_ROWS_KEY: jnp.array([True, True, False, False])}
  masked = head.loss(labels, logits, mask, estlab.ModeKeys.EVAL)
  real = head.loss(labels[:2], logits[:2], {}, estlab.ModeKeys.EVAL)
  np.testing.assert_allclose(masked, real, rtol=1e-6)
  accuracy = head.update_metrics(None, mask, logits, labels)["accuracy"]
  assert float(accuracy.compute()) == 1.0  # the two padded rows are wrong


def test_a_short_last_predict_batch_is_padded_and_sliced(tmp_path):
  features, labels = _data.table(70)
  est = _classifier(tmp_path=tmp_path)
  est.train(_data.input_fn(features, labels["binary"], batch_size=32))
  got = list(est.predict(_data.input_fn(features, None, batch_size=32)))
  whole = list(est.predict(_data.input_fn(features, None, batch_size=70)))
  assert len(got) == 70
  np.testing.assert_allclose([p["logits"] for p in got],
                             [p["logits"] for p in whole], rtol=1e-5)
  assert est._run().steps.traces["predict_step"] == 2  # batch 32, batch 70


def test_predict_hands_the_model_fn_no_labels_even_if_the_input_has_them():
  seen = []

  def model_fn(features, labels, mode):
    seen.append((mode, labels is None))
    y = nn.Dense(1)(features["x"])[:, 0]
    loss = None if labels is None else jnp.mean((y - labels) ** 2)
    return estlab.EstimatorSpec(mode, predictions={"y": y}, loss=loss,
                                train_op=optax.sgd(0.1))
  x = np.ones((8, 1), np.float32)
  est = estlab.Estimator(model_fn, config=estlab.RunConfig(**CONFIG))
  with_labels = estlab.inputs.numpy_input_fn({"x": x}, x[:, 0], shuffle=False)
  est.train(with_labels)
  assert len(list(est.predict(with_labels))) == 8
  assert ("infer", True) in seen and ("infer", False) not in seen


def _compile_events():
  """XLA compilations from now on, by the thread that asked for them."""
  events = []

  def listen(name, secs, **kwargs):
    del secs, kwargs
    if name == "/jax/core/compile/backend_compile_duration":
      events.append(threading.current_thread().name)
  jax.monitoring.register_event_duration_secs_listener(listen)
  return events


def test_after_training_evaluate_and_predict_compile_nothing(tmp_path):
  features, labels = _data.table(100)
  y = labels["binary"]
  est = _classifier(tmp_path=tmp_path)
  est.train(_data.input_fn(features, y, batch_size=32, epochs=2))
  events = _compile_events()
  est.evaluate(_data.input_fn(features, y, batch_size=32))
  first = next(est.predict(_data.input_fn(features, None, batch_size=32)))
  assert set(first) >= {"logits", "class_ids"}
  # The steps were compiled ahead, in threads started by train() (which
  # evaluate waits for when they are not done); the caller compiled nothing.
  assert [name for name in events if name != "estlab-compile"] == []


def test_padding_repeats_real_rows_so_padded_rows_are_valid_inputs():
  batches = [{"x": np.arange(4.0)}, {"x": np.array([7.0])}]
  out = list(estlab.data._grouping.pad_short_batches(iter(batches)))
  assert out[0][1] is None and out[1][1] == 1
  np.testing.assert_array_equal(out[1][0]["x"], [7.0, 7.0, 7.0, 7.0])
  assert _classifier()._host.pads_eval_batches
  assert not estlab.Estimator._host.pads_eval_batches


def test_loops_of_table_rows_train_as_single_steps_do(tmp_path):
  features, labels = _data.table(200)
  results = []
  for steps_per_loop in (1, 4):
    config = estlab.RunConfig(**CONFIG, steps_per_loop=steps_per_loop)
    linear, _ = _data.columns()
    est = estlab.LinearClassifier(linear, model_dir=tmp_path / str(steps_per_loop),
                                  config=config)
    est.train(estlab.inputs.numpy_input_fn(
        features, labels["binary"], batch_size=32, num_epochs=None,
        shuffle=True, seed=3), steps=10)  # two loops of 4, then 2 singles
    results.append({n: est.get_variable_value(n)
                    for n in est.get_variable_names()})
  for name, value in results[0].items():
    np.testing.assert_allclose(results[1][name], value, rtol=1e-5, atol=1e-7,
                               err_msg=name)


def test_the_encoded_table_lives_only_as_long_as_its_input_fn(tmp_path):
  import gc  # pylint: disable=g-import-not-at-top
  features, labels = _data.table(64)
  est = _classifier(tmp_path=tmp_path)
  train_fn = estlab.inputs.numpy_input_fn(features, labels["binary"],
                                          batch_size=16, num_epochs=None,
                                          shuffle=True, seed=0)
  est.train(train_fn, steps=6)
  assert len(est._tables) == 1  # pylint: disable=protected-access
  del train_fn
  gc.collect()
  assert len(est._tables) == 0  # pylint: disable=protected-access
