"""ProfilerHook: jax.profiler traces of the steps tf.estimator's would trace,
where TensorBoard's profile plugin reads them."""
import itertools
import json
import os

import pytest

import estlab
from _models import linear_model_fn, quiet, regression_data

X, Y = regression_data(64)
_BATCHES = [({"x": X[i:i + 16]}, Y[i:i + 16]) for i in range(0, 64, 16)]
_forever = lambda: itertools.cycle(_BATCHES)
_TF = json.load(open(os.path.join(os.path.dirname(__file__), "tf_reference",
                                  "experimental_hooks_tf215.json")))


def _runs(output_dir):
  """``{step: files}`` of the profile plugin's runs under ``output_dir``."""
  profile = os.path.join(output_dir, "plugins", "profile")
  if not os.path.isdir(profile):
    return {}
  return {int(name.rsplit("_step_", 1)[1]):
          sorted(os.listdir(os.path.join(profile, name)))
          for name in os.listdir(profile)}


def _train(model_dir, hook, steps, **config):
  est = estlab.Estimator(linear_model_fn, model_dir, config=quiet(**config))
  est.train(_forever, hooks=[hook], steps=steps)
  return est


def test_traces_the_steps_tf_traces_where_tensorboard_reads_them(tmp_path):
  out = tmp_path / "profile"
  _train(tmp_path / "m", estlab.ProfilerHook(save_steps=3, output_dir=out),
         steps=10)
  runs = _runs(out)
  assert sorted(runs) == _TF["profiler_save_steps_3_train_10"] == [3, 6, 9]
  for files in runs.values():
    assert any(f.endswith(".xplane.pb") for f in files), files
    assert "memory.prof" not in files
  for name in os.listdir(out / "plugins" / "profile"):
    assert os.path.getsize(next(
        (out / "plugins" / "profile" / name).glob("*.xplane.pb"))) > 0


def test_a_second_train_call_counts_from_where_it_starts(tmp_path):
  hook = estlab.ProfilerHook(save_steps=4, output_dir=tmp_path / "p",
                             show_memory=True)
  est = _train(tmp_path / "m", hook, steps=5)
  est.train(_forever, hooks=[hook], steps=5)  # steps 6..10: traces 9
  runs = _runs(tmp_path / "p")
  assert sorted(runs) == [4, 9]
  assert all("memory.prof" in files for files in runs.values())


def test_with_steps_per_loop_a_loop_is_traced_by_its_last_step(tmp_path):
  _train(tmp_path / "m", estlab.ProfilerHook(save_steps=4,
                                             output_dir=tmp_path / "p"),
         steps=12, steps_per_loop=2)
  # runs end at 2, 4, ...: the first run (to 2) is never traced; the run
  # reaching 4 steps past step 0 ends at 4, then 8, 12.
  assert sorted(_runs(tmp_path / "p")) == [4, 8, 12]


def test_save_secs_traces_nothing_before_that_time(tmp_path):
  _train(tmp_path / "m", estlab.ProfilerHook(save_secs=3600,
                                             output_dir=tmp_path / "p"),
         steps=6)
  assert _runs(tmp_path / "p") == {}


def test_the_input_ending_leaves_no_open_trace(tmp_path):
  # Every run after the first is traced from its before_run: the input (4
  # batches) ends in the fifth one, so that trace has no step and is
  # discarded, and a new trace can start afterwards.
  est = estlab.Estimator(linear_model_fn, tmp_path / "m", config=quiet())
  hook = estlab.ProfilerHook(save_steps=1, output_dir=tmp_path / "p")
  est.train(lambda: list(_BATCHES), hooks=[hook])
  names = os.listdir(tmp_path / "p" / "plugins" / "profile")
  assert all("_step_" in name for name in names), names
  assert sorted(_runs(tmp_path / "p")) == [2, 3, 4]
  import jax
  jax.profiler.start_trace(str(tmp_path / "own"))
  jax.profiler.stop_trace()


def test_cadence_errors():
  with pytest.raises(ValueError, match="exactly one"):
    estlab.ProfilerHook()
  with pytest.raises(ValueError, match="exactly one"):
    estlab.ProfilerHook(save_steps=2, save_secs=1)


def test_from_a_model_fn_and_a_train_spec(tmp_path):
  spec_hook = estlab.ProfilerHook(save_steps=3, output_dir=tmp_path / "spec")

  def model_fn(features, labels, mode, params):
    spec = linear_model_fn(features, labels, mode, params)
    return spec._replace(training_hooks=[spec_hook]) if mode == "train" else spec
  est = estlab.Estimator(model_fn, tmp_path / "m", config=quiet(
      save_checkpoints_steps=4))
  spec_hook_2 = estlab.ProfilerHook(save_steps=2, output_dir=tmp_path / "ts")
  estlab.train_and_evaluate(
      est, estlab.TrainSpec(_forever, max_steps=6, hooks=[spec_hook_2]),
      estlab.EvalSpec(lambda: list(_BATCHES), throttle_secs=0))
  assert sorted(_runs(tmp_path / "spec")) == [3, 6]
  assert sorted(_runs(tmp_path / "ts")) == [2, 4, 6]


def test_a_trace_left_open_by_an_error_is_dropped(tmp_path):
  class Raise(estlab.SessionRunHook):
    def after_run(self, run_context, run_values):
      if run_context.global_step == 2:
        raise RuntimeError("boom")
  est = estlab.Estimator(linear_model_fn, tmp_path / "m", config=quiet())
  with pytest.raises(RuntimeError, match="boom"):  # before the trace of 2 ends
    est.train(_forever, steps=6, hooks=[
        Raise(), estlab.ProfilerHook(save_steps=1, output_dir=tmp_path / "a")])
  assert _runs(tmp_path / "a") == {}
  # (nothing was saved: training starts again from step 0)
  est.train(_forever, steps=4, hooks=[
      estlab.ProfilerHook(save_steps=2, output_dir=tmp_path / "b")])
  assert sorted(_runs(tmp_path / "b")) == [2, 4]


def test_show_dataflow_keeps_the_compiled_steps_hlo(tmp_path):
  # The HLO of the traced step (its instructions, ``parameter`` among them)
  # is in the trace only with show_dataflow.
  traces = {}
  for flag in (True, False):
    _train(tmp_path / f"m{flag}", estlab.ProfilerHook(
        save_steps=2, output_dir=tmp_path / f"p{flag}", show_dataflow=flag),
           steps=3)
    [xplane] = (tmp_path / f"p{flag}").glob("plugins/profile/*/*.xplane.pb")
    traces[flag] = xplane.read_bytes()
  assert b"parameter" in traces[True]
  assert b"parameter" not in traces[False]
