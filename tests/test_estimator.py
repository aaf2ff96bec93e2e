"""Estimator: tf.estimator's train / evaluate / predict contract on JAX."""
import itertools
import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

import estlab
from _models import (batches_input_fn, linear_model_fn, quiet, regression_data,
                     seed_model_fn, toy_dataset)


def _linear(tmp_path, **config):
  return estlab.Estimator(linear_model_fn, tmp_path / "m", config=quiet(**config),
                          params={"learning_rate": 0.1})


def test_seed_example_checkpoint_readable_with_plain_orbax(tmp_path):
  model_dir = tmp_path / "tf_estimator_example"
  est = estlab.Estimator(seed_model_fn, str(model_dir) + "/")
  assert est.train(toy_dataset, steps=10) is est
  manager = ocp.CheckpointManager(model_dir)
  assert manager.latest_step() == 10
  restored = manager.restore(10, args=ocp.args.Composite(
      params=ocp.args.StandardRestore()))
  kernel = np.asarray(restored["params"]["Net_0"]["Dense_0"]["kernel"])
  np.testing.assert_allclose(kernel, est.get_variable_value("Net_0/Dense_0/kernel"))
  assert est.get_variable_names() == ["Net_0/Dense_0/bias", "Net_0/Dense_0/kernel",
                                     "global_step"]
  # TF lists the step as a variable; tests and users read it so.
  value = est.get_variable_value("global_step")
  assert value == 10 and value.dtype == np.int64
  # evaluate's values are numpy scalars, as TF's (pytest.approx(dict) works).
  metrics = est.evaluate(lambda: itertools.islice(toy_dataset(), 2))
  assert isinstance(metrics["loss"], np.floating)
  assert metrics == pytest.approx(dict(metrics))


def test_loss_falls_and_metrics_are_reported(tmp_path):
  x, y = regression_data()
  est = _linear(tmp_path)
  before = est.train(batches_input_fn(x, y), steps=1).evaluate(
      batches_input_fn(x, y))
  after = est.train(batches_input_fn(x, y, epochs=20)).evaluate(
      batches_input_fn(x, y))
  assert after["loss"] < 0.01 * before["loss"]
  assert set(after) == {"loss", "global_step", "mse", "mean_pred"}
  assert after["global_step"] == 1 + 20 * 8
  # loss is the mean of per-batch losses; with equal batches it equals mse.
  np.testing.assert_allclose(after["loss"], after["mse"], rtol=1e-5)
  preds = np.array([p["pred"] for p in est.predict(batches_input_fn(x, y))])
  np.testing.assert_allclose(np.mean((preds - y) ** 2), after["mse"], rtol=1e-4)


def test_steps_max_steps_and_finite_input(tmp_path):
  x, y = regression_data(64)
  est = _linear(tmp_path)
  forever = lambda: itertools.repeat(({"x": x[:8]}, y[:8]))
  est.train(forever, steps=3)
  assert est.evaluate(batches_input_fn(x, y))["global_step"] == 3
  est.train(forever, steps=4)                       # steps adds
  assert est.evaluate(batches_input_fn(x, y))["global_step"] == 7
  est.train(forever, max_steps=10)                  # max_steps is absolute
  assert est.evaluate(batches_input_fn(x, y))["global_step"] == 10
  est.train(forever, max_steps=5)                   # already reached: no-op
  assert est.evaluate(batches_input_fn(x, y))["global_step"] == 10
  est.train(batches_input_fn(x, y, batch_size=16), steps=100)  # input ends first
  assert est.evaluate(batches_input_fn(x, y))["global_step"] == 14
  with pytest.raises(ValueError, match="steps=1, max_steps=2"):
    est.train(forever, steps=1, max_steps=2)
  with pytest.raises(ValueError, match="steps=0"):
    est.train(forever, steps=0)


def test_compiled_once_and_state_stays_on_device(tmp_path, monkeypatch):
  x, y = regression_data(64)
  est = _linear(tmp_path)
  restores = []
  real_restore = estlab.checkpoint.Checkpointer.restore
  monkeypatch.setattr(estlab.checkpoint.Checkpointer, "restore",
                      lambda *a, **k: restores.append(1) or real_restore(*a, **k))
  for _ in range(3):
    est.train(batches_input_fn(x, y, batch_size=16))
    est.evaluate(batches_input_fn(x, y, batch_size=16))
    list(est.predict(batches_input_fn(x, y, batch_size=16)))
  traces = est._run().steps.traces
  assert traces["train_step"] == 1
  assert traces["eval_step"] == 1
  assert traces["predict_step"] == 1
  assert traces["init"] == 1
  assert restores == []  # parameters were never reloaded between calls
  assert est.train_step_cache_size() == 1


def test_repeated_evaluate_calls_do_not_trace_the_model_fn_again(tmp_path):
  x, y = regression_data(64)
  modes = []

  def model_fn(features, labels, mode, params):
    modes.append(mode)
    return linear_model_fn(features, labels, mode, params)
  est = estlab.Estimator(model_fn, tmp_path, config=quiet(), params={})
  est.train(batches_input_fn(x, y, batch_size=16))
  first = est.evaluate(batches_input_fn(x, y, batch_size=16))
  traced = modes.count("eval")
  for _ in range(3):
    again = est.evaluate(batches_input_fn(x, y, batch_size=16))
  assert modes.count("eval") == traced
  assert again == first


def test_new_batch_shape_compiles_once_more(tmp_path):
  x, y = regression_data(40)
  est = _linear(tmp_path)
  est.train(batches_input_fn(x, y, batch_size=16))   # 16, 16, 8
  est.train(batches_input_fn(x, y, batch_size=16))
  assert est._run().steps.traces["train_step"] == 2


def test_steps_per_loop_matches_single_steps(tmp_path):
  x, y = regression_data(64)
  forever = lambda: itertools.cycle(
      [({"x": x[i:i + 8]}, y[i:i + 8]) for i in range(0, 64, 8)])
  single = _linear(tmp_path / "a").train(forever, steps=12)
  looped = _linear(tmp_path / "b", steps_per_loop=5).train(forever, steps=12)
  traces = looped._run().steps.traces
  assert traces["train_loop"] == 1 and traces["train_step"] == 0  # 5, 5 and 2
  assert looped.latest_checkpoint().endswith(os.sep + "12")
  for name in single.get_variable_names():
    np.testing.assert_allclose(single.get_variable_value(name),
                               looped.get_variable_value(name), rtol=1e-5)


@pytest.mark.parametrize("calls", [(3,), (5, 2), (12, 1, 4), (2, 9)])
def test_partial_loops_reuse_the_loop_program_and_equal_single_steps(
    tmp_path, calls):
  # A call's tail, a call shorter than a loop and a finite input's end run
  # in the one loop program (a dynamic trip count), never a one-step one.
  x, y = regression_data(64)
  forever = lambda: itertools.cycle(
      [({"x": x[i:i + 8]}, y[i:i + 8]) for i in range(0, 64, 8)])
  single, looped = _linear(tmp_path / "a"), _linear(tmp_path / "b",
                                                    steps_per_loop=5)
  for steps in calls:
    single.train(forever, steps=steps)
    looped.train(forever, steps=steps)
  finite = lambda: iter([({"x": x[:8]}, y[:8]), ({"x": x[8:16]}, y[8:16])])
  single.train(finite)
  looped.train(finite)
  traces = looped._run().steps.traces
  assert traces["train_loop"] == 1 and traces["train_step"] == 0
  assert looped.latest_checkpoint().endswith(os.sep + str(sum(calls) + 2))
  for name in single.get_variable_names():
    np.testing.assert_allclose(single.get_variable_value(name),
                               looped.get_variable_value(name), rtol=1e-5)


def test_a_loop_hands_hooks_and_summaries_its_last_real_steps_outputs(tmp_path):
  x, y = regression_data(64)
  forever = lambda: itertools.cycle(
      [({"x": x[i:i + 8]}, y[i:i + 8]) for i in range(0, 64, 8)])
  seen = []

  class Losses(estlab.SessionRunHook):
    def after_run(self, run_context, run_values):
      seen.append((run_context.global_step,
                   float(run_values.results["loss"]),
                   int(run_values.results["global_step"])))
  _linear(tmp_path / "a").train(forever, steps=7, hooks=[Losses()])
  ones = dict((step, loss) for step, loss, _ in seen)
  seen.clear()
  _linear(tmp_path / "b", steps_per_loop=5).train(forever, steps=7,
                                                  hooks=[Losses()])
  assert [(step, gs) for step, _, gs in seen] == [(5, 5), (7, 7)]
  for step, loss, _ in seen:  # the loop's last real step, not its padding
    np.testing.assert_allclose(loss, ones[step], rtol=1e-5)


def test_resume_in_a_new_process(tmp_path):
  model_dir = tmp_path / "m"
  script = textwrap.dedent(f"""
      import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})
      import estlab
      from _models import seed_model_fn, toy_dataset
      est = estlab.Estimator(seed_model_fn, {str(model_dir)!r},
                             config=estlab.RunConfig(progress_bar=False))
      est.train(toy_dataset, steps=4)
      print("STEP", est.latest_checkpoint())
  """)
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  for expected in ("4", "8"):
    out = subprocess.run([sys.executable, "-c", script], capture_output=True,
                         text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith(os.sep + expected)


def test_a_stateless_train_op_checkpoints_and_resumes(tmp_path):
  def model_fn(features, labels, mode):
    pred = nn.Dense(1)(features["x"])[:, 0]
    loss = jnp.mean((pred - labels) ** 2)
    return estlab.EstimatorSpec(mode, loss=loss, predictions=pred,
                                train_op=optax.scale(-0.1))  # plain SGD, no state
  x, y = regression_data()
  est = estlab.Estimator(model_fn, tmp_path / "m", config=quiet())
  est.train(batches_input_fn(x, y), steps=3)
  resumed = estlab.Estimator(model_fn, tmp_path / "m", config=quiet())
  kernel = est.get_variable_value("Dense_0/kernel")
  np.testing.assert_array_equal(resumed.get_variable_value("Dense_0/kernel"), kernel)
  resumed.train(batches_input_fn(x, y), steps=2)
  assert resumed.latest_checkpoint().endswith("/5")
  assert not np.array_equal(resumed.get_variable_value("Dense_0/kernel"), kernel)


def test_checkpoint_cadence_and_keep_max(tmp_path):
  x, y = regression_data(64)
  forever = lambda: itertools.repeat(({"x": x[:8]}, y[:8]))
  est = _linear(tmp_path, save_checkpoints_steps=5, keep_checkpoint_max=2)
  est.train(forever, steps=12)
  manager = ocp.CheckpointManager(tmp_path / "m")
  assert manager.all_steps() == [10, 12]


def test_run_config_default_saves_every_600_seconds():
  config = estlab.RunConfig()
  assert config.save_checkpoints_secs == 600
  assert config.save_checkpoints_steps is None


def test_model_dir_rules(tmp_path):
  est = estlab.Estimator(seed_model_fn)
  assert os.path.isdir(est.model_dir)
  assert est.config.model_dir == est.model_dir
  same = estlab.Estimator(seed_model_fn, tmp_path,
                          config=estlab.RunConfig(model_dir=str(tmp_path)))
  assert same.model_dir == str(tmp_path)
  with pytest.raises(ValueError, match="differs from config.model_dir"):
    estlab.Estimator(seed_model_fn, tmp_path / "a",
                     config=estlab.RunConfig(model_dir=str(tmp_path / "b")))


def test_params_reach_the_model_fn(tmp_path):
  seen = {}

  def model_fn(features, labels, mode, params, config):
    seen.update(params=params, config=config)
    return seed_model_fn(features, labels, mode)
  est = estlab.Estimator(model_fn, tmp_path, config=quiet(), params={"units": 3})
  est.train(toy_dataset, steps=1)
  assert seen["params"] == {"units": 3}
  assert seen["config"].model_dir == str(tmp_path)
  with pytest.raises(ValueError, match="takes no `params` argument"):
    estlab.Estimator(seed_model_fn, params={"units": 3})


def test_predict_modes_and_keys(tmp_path):
  x, y = regression_data(40)
  est = _linear(tmp_path).train(batches_input_fn(x, y), steps=2)
  rows = list(est.predict(batches_input_fn(x, y, batch_size=16)))
  assert len(rows) == 40 and set(rows[0]) == {"pred", "double"}
  np.testing.assert_allclose(rows[3]["double"], 2 * rows[3]["pred"], rtol=1e-6)
  only = list(est.predict(batches_input_fn(x, y), predict_keys="double"))
  assert set(only[0]) == {"double"}
  batches = list(est.predict(batches_input_fn(x, y, batch_size=16),
                             yield_single_examples=False))
  assert [b["pred"].shape for b in batches] == [(16,), (16,), (8,)]
  with pytest.raises(ValueError, match="'nope'"):
    list(est.predict(batches_input_fn(x, y), predict_keys=["nope"]))
  features_only = lambda: [{"x": x[:5]}]
  assert len(list(est.predict(features_only))) == 5


def test_single_examples_are_the_rows_of_each_batch_as_numpy(tmp_path):
  x, y = regression_data(40)
  est = _linear(tmp_path).train(batches_input_fn(x, y), steps=2)
  batches = list(est.predict(batches_input_fn(x, y, batch_size=16),
                             yield_single_examples=False))
  rows = list(est.predict(batches_input_fn(x, y, batch_size=16)))
  assert len(rows) == 40
  for i, row in enumerate(rows):
    batch = batches[i // 16]
    for key, value in row.items():
      expected = batch[key][i % 16]
      assert type(value) is type(expected)  # numpy scalars, as v[i] gives
      np.testing.assert_array_equal(value, expected)


def test_single_examples_need_one_batch_size_across_predictions(tmp_path):
  def model_fn(features, labels, mode):
    out = nn.Dense(1)(features["x"])[:, 0]
    if mode == estlab.ModeKeys.PREDICT:
      return estlab.EstimatorSpec(mode, predictions={
          "y": out, "mean": jnp.full((3,), jnp.mean(out))})
    return estlab.EstimatorSpec(mode, loss=jnp.mean((out - labels) ** 2),
                                train_op=optax.sgd(0.1))
  x, y = regression_data(20)
  est = estlab.Estimator(model_fn, tmp_path, config=quiet())
  est.train(batches_input_fn(x, y, batch_size=4), steps=1)
  with pytest.raises(ValueError, match=r"\{'mean': 3, 'y': 8\}.*"
                     "yield_single_examples=False"):
    list(est.predict(batches_input_fn(x, y, batch_size=8)))
  whole = list(est.predict(batches_input_fn(x, y, batch_size=8),
                           yield_single_examples=False))
  assert whole[0]["mean"].shape == (3,)


def test_predict_single_array_and_checkpoint_path(tmp_path):
  def model_fn(features, labels, mode):
    out = nn.Dense(1)(features["x"])[:, 0]
    if mode == estlab.ModeKeys.PREDICT:
      return estlab.EstimatorSpec(mode, predictions=out)
    loss = jnp.mean((out - labels) ** 2)
    return estlab.EstimatorSpec(mode, loss=loss, train_op=optax.sgd(0.1))
  x, y = regression_data(20)
  est = estlab.Estimator(model_fn, tmp_path, config=quiet())
  est.train(batches_input_fn(x, y, batch_size=4), steps=2)
  first = est.latest_checkpoint()
  est.train(batches_input_fn(x, y, batch_size=4), steps=3)
  old = np.array(list(est.predict(batches_input_fn(x, y), checkpoint_path=first)))
  new = np.array(list(est.predict(batches_input_fn(x, y))))
  assert old.shape == (20,) and not np.allclose(old, new)
  assert est.evaluate(batches_input_fn(x, y), checkpoint_path=first)["global_step"] == 2
  fresh = estlab.Estimator(model_fn, tmp_path, config=quiet())   # restores
  np.testing.assert_allclose(np.array(list(fresh.predict(batches_input_fn(x, y)))), new)


def test_dropout_random_in_train_deterministic_otherwise(tmp_path):
  def model_fn(features, labels, mode):
    h = nn.Dropout(0.5, deterministic=mode != estlab.ModeKeys.TRAIN)(features["x"])
    out = nn.Dense(1)(h)[:, 0]
    loss = jnp.mean((out - labels) ** 2)
    return estlab.EstimatorSpec(mode, loss=loss, predictions=out,
                                train_op=optax.sgd(0.01),
                                summaries={"zeros": jnp.mean(h == 0)})
  x, y = regression_data(64)
  est = estlab.Estimator(model_fn, tmp_path, config=quiet(save_summary_steps=1))
  est.train(batches_input_fn(x, y), steps=2)
  zeros = estlab.summary.read_scalars(tmp_path)["zeros"]
  assert all(0.3 < v < 0.7 for _, v in zeros)
  a = est.evaluate(batches_input_fn(x, y))["loss"]
  b = est.evaluate(batches_input_fn(x, y))["loss"]
  assert a == b

  def always_random(features, labels, mode):
    h = nn.Dropout(0.5, deterministic=False)(features["x"])
    return model_fn({"x": h}, labels, mode)
  bad = estlab.Estimator(always_random, tmp_path, config=quiet())
  with pytest.raises(ValueError, match="deterministic"):
    bad.evaluate(batches_input_fn(x, y))


def test_batch_norm_statistics_update(tmp_path):
  def model_fn(features, labels, mode):
    h = nn.BatchNorm(use_running_average=mode != estlab.ModeKeys.TRAIN,
                     momentum=0.5)(features["x"])
    out = nn.Dense(1)(h)[:, 0]
    loss = jnp.mean((out - labels) ** 2)
    return estlab.EstimatorSpec(mode, loss=loss, predictions=out,
                                train_op=optax.sgd(0.01))
  x, y = regression_data(64)
  x = x * 3 + 5
  est = estlab.Estimator(model_fn, tmp_path, config=quiet())
  est.train(batches_input_fn(x, y, batch_size=8), steps=8)
  mean = est._session.state.model_state["batch_stats"]["BatchNorm_0"]["mean"]
  assert np.all(np.asarray(mean) > 1.0)       # moved from 0 towards 5
  assert np.isfinite(est.evaluate(batches_input_fn(x, y))["loss"])


def test_warm_start_loads_matching_variables(tmp_path):
  x, y = regression_data(64)
  old = _linear(tmp_path / "old").train(batches_input_fn(x, y, epochs=5))
  new = estlab.Estimator(linear_model_fn, tmp_path / "new", config=quiet(),
                         params={"learning_rate": 0.0},
                         warm_start_from=old.model_dir)
  new.train(batches_input_fn(x, y), steps=1)
  np.testing.assert_allclose(new.get_variable_value("linear/kernel"),
                             old.get_variable_value("linear/kernel"))
  settings = estlab.WarmStartSettings(old.model_dir, vars_to_warm_start="nothing")
  other = estlab.Estimator(linear_model_fn, tmp_path / "other", config=quiet(),
                           params={"learning_rate": 0.0},
                           warm_start_from=settings)
  other.train(batches_input_fn(x, y), steps=1)
  assert not np.allclose(other.get_variable_value("linear/kernel"),
                         old.get_variable_value("linear/kernel"))


def test_hooks_see_outputs_and_can_stop(tmp_path):
  x, y = regression_data(64)
  forever = lambda: itertools.repeat(({"x": x[:8]}, y[:8]))

  class Recorder(estlab.SessionRunHook):
    def __init__(self):
      self.calls, self.losses = [], []

    def begin(self):
      self.calls.append("begin")

    def after_run(self, run_context, run_values):
      self.losses.append(float(run_values.results["loss"]))
      if run_context.global_step >= 4:
        run_context.request_stop()

    def end(self, session=None):
      self.calls.append("end")
  recorder = Recorder()
  est = _linear(tmp_path).train(forever, hooks=[recorder])
  assert recorder.calls == ["begin", "end"]
  assert len(recorder.losses) == 4 and recorder.losses[-1] < recorder.losses[0]
  assert est.latest_checkpoint().endswith(os.sep + "4")
  est.train(forever, hooks=[estlab.StopAtStepHook(num_steps=3)])
  assert est.latest_checkpoint().endswith(os.sep + "7")


def test_latest_checkpoint_is_orbax_latest_step(tmp_path):
  est = _linear(tmp_path, save_checkpoints_steps=2, keep_checkpoint_max=2)
  assert est.latest_checkpoint() is None  # nothing written yet
  x, y = regression_data(64)
  est.train(batches_input_fn(x, y, batch_size=8), steps=5)  # saves 2, 4, 5
  assert est.latest_checkpoint() == os.path.join(est.model_dir, "5")
  assert est.latest_checkpoint() == estlab.checkpoint.latest_checkpoint(
      est.model_dir)


def test_train_events_hold_the_tags(tmp_path):
  x, y = regression_data(64)
  est = _linear(tmp_path, save_summary_steps=2)
  est.train(batches_input_fn(x, y, batch_size=8))
  est.evaluate(batches_input_fn(x, y))
  est.evaluate(batches_input_fn(x, y), name="holdout")
  train = estlab.summary.read_scalars(est.model_dir)
  assert {"loss", "global_step/sec", "learning_rate", "pred_mean"} <= set(train)
  assert [s for s, _ in train["loss"]] == [2, 4, 6, 8]
  np.testing.assert_allclose(train["learning_rate"][0][1], 0.1)
  for name in (None, "holdout"):
    events = estlab.summary.read_scalars(est.eval_dir(name))
    assert events["mse"][0][0] == 8 and "loss" in events
  assert est.eval_dir("holdout").endswith("eval_holdout")


def test_evaluate_without_checkpoint_is_clear(tmp_path):
  est = estlab.Estimator(seed_model_fn, tmp_path, config=quiet())
  with pytest.raises(ValueError, match="Could not find a trained model"):
    est.evaluate(toy_dataset, steps=1)


def test_logs_loss_and_rate_and_shows_progress(tmp_path, caplog, capsys):
  x, y = regression_data(64)
  est = estlab.Estimator(linear_model_fn, tmp_path, params={"learning_rate": 0.1},
                         config=quiet(log_step_count_steps=3, progress_bar=True))
  with caplog.at_level("INFO", logger="estlab"):
    est.train(lambda: itertools.repeat(({"x": x[:8]}, y[:8])), steps=6)
  lines = [r.getMessage() for r in caplog.records if "global_step/sec" in r.getMessage()]
  assert [l.split("step = ")[1].split(" ")[0] for l in lines] == ["3", "6"]
  assert "train:" in capsys.readouterr().err
  quiet_est = estlab.Estimator(linear_model_fn, tmp_path / "q", config=quiet(),
                               params={"learning_rate": 0.1})
  quiet_est.train(lambda: itertools.repeat(({"x": x[:8]}, y[:8])), steps=2)
  assert "train:" not in capsys.readouterr().err


def test_evaluate_and_predict_run_hooks_and_spec_hooks(tmp_path):
  x, y = regression_data(64)
  calls = []

  class Recorder(estlab.SessionRunHook):
    def __init__(self, tag, stop_after=None):
      self.tag, self.stop_after, self.runs = tag, stop_after, 0

    def begin(self):
      calls.append((self.tag, "begin"))

    def after_run(self, run_context, run_values):
      self.runs += 1
      assert run_context.mode in ("eval", "infer")
      if self.stop_after and self.runs >= self.stop_after:
        run_context.request_stop()

    def end(self, session=None):
      calls.append((self.tag, "end", self.runs))
  spec_hook = Recorder("spec")

  def model_fn(features, labels, mode, params):
    spec = linear_model_fn(features, labels, mode, params)
    return spec._replace(evaluation_hooks=(spec_hook,))
  est = estlab.Estimator(model_fn, tmp_path, config=quiet(), params={})
  est.train(batches_input_fn(x, y, batch_size=8))
  result = est.evaluate(batches_input_fn(x, y, batch_size=8),
                        hooks=[Recorder("user", stop_after=3)])
  assert ("user", "end", 3) in calls and ("spec", "end", 3) in calls
  assert result["loss"] > 0
  rows = list(est.predict(batches_input_fn(x, y, batch_size=8),
                          hooks=[Recorder("pred", stop_after=2)]))
  assert len(rows) == 16 and ("pred", "end", 2) in calls


def test_a_fresh_model_dir_reaches_its_first_step_before_importing_orbax(tmp_path):
  # Orbax's import costs about a CPU-second; on a fresh model_dir it must not
  # compete with the first compilation, nor delay the first step (it comes
  # for the start checkpoint, written once the first step and its hooks ran).
  script = textwrap.dedent(f"""
      import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})
      import estlab
      from _models import seed_model_fn, toy_dataset

      class Probe(estlab.SessionRunHook):
        seen = []
        def after_run(self, run_context, run_values):
          self.seen.append("orbax.checkpoint" in sys.modules)
      est = estlab.Estimator(seed_model_fn, {str(tmp_path / "m")!r},
                             config=estlab.RunConfig(progress_bar=False))
      est.train(toy_dataset, steps=2, hooks=[Probe()])
      import numpy as np
      ckpt = estlab.checkpoint.Checkpointer(est.model_dir)
      bias = [[np.asarray(v) for k, v in estlab.checkpoint.flatten_names(
                  ckpt.restore_params(step=s)).items() if k.endswith("bias")]
              for s in (0, 2)]
      print("BIAS", not np.any(bias[0]), bool(np.all(bias[1][0] != 0)))
      print("SEEN", Probe.seen, "orbax.checkpoint" in sys.modules,
            est.latest_checkpoint())
  """)
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", script], capture_output=True,
                       text=True, timeout=240, env=env)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.split("SEEN ")[-1].startswith("[False, True")
  # step 0 holds the state from before the first step (Dense's zero bias)
  assert "BIAS True True" in out.stdout, out.stdout
  assert out.stdout.strip().endswith(os.sep + "2")
  assert sorted(os.listdir(tmp_path / "m"))[:2] == ["0", "2"]  # TF's: start, end
