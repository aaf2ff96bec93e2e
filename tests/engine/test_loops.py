"""The training loop writes each summary late, but at its own step."""
import itertools
import json
import os

import jax
import numpy as np
import pytest

import estlab
from _models import linear_model_fn, quiet, regression_data


class _Losses(estlab.SessionRunHook):
  """The loss of every dispatched call, read by the hook as it runs."""

  def __init__(self):
    self.by_step = {}

  def after_run(self, run_context, run_values):
    self.by_step[run_context.global_step] = float(run_values.results["loss"])


@pytest.mark.parametrize("steps_per_loop", [1, 3])
def test_late_summaries_carry_their_own_steps_and_values(tmp_path, steps_per_loop):
  x, y = regression_data(96)
  batches = [({"x": x[i:i + 8]}, y[i:i + 8]) for i in range(0, 96, 8)]
  est = estlab.Estimator(
      linear_model_fn, tmp_path, params={"learning_rate": 0.05},
      config=quiet(save_summary_steps=steps_per_loop,
                   log_step_count_steps=steps_per_loop,
                   steps_per_loop=steps_per_loop))
  hook = _Losses()
  est.train(lambda: itertools.cycle(batches), steps=12, hooks=[hook])
  written = estlab.summary.read_scalars(tmp_path)
  steps = [s for s, _ in written["loss"]]
  assert steps == list(range(steps_per_loop, 13, steps_per_loop))
  assert set(hook.by_step) == set(steps)
  for step, loss in written["loss"]:  # the step's own loss, not a later one
    assert loss == pytest.approx(hook.by_step[step], rel=1e-6)
  assert len({round(v, 6) for _, v in written["loss"]}) == len(steps)
  rates = [v for _, v in written["global_step/sec"]]
  assert len(rates) == len(steps) and all(r > 0 for r in rates)


def test_nan_found_late_still_names_its_step_and_keeps_the_good_state(tmp_path):
  x, y = regression_data(64)
  y = np.array(y)
  bad = y.copy()
  bad[:8] = np.nan
  batches = [({"x": x[:8]}, y[:8])] * 5 + [({"x": x[:8]}, bad[:8])] * 3
  est = estlab.Estimator(linear_model_fn, tmp_path, params={"learning_rate": 0.05},
                         config=quiet(save_summary_steps=1))
  with pytest.raises(estlab.NanLossDuringTrainingError, match="step 6"):
    est.train(lambda: iter(batches))
  assert all(np.isfinite(v) for _, v in estlab.summary.read_scalars(tmp_path)["loss"])


def test_host_reads_outputs_as_device_get_does():
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from estlab._engine import loops as _loops  # pylint: disable=g-import-not-at-top
  tree = jax.jit(lambda x: {"p": x * 2, "b": x.astype(jnp.bfloat16),
                            "n": {"s": x.sum()}})(jnp.arange(6.0).reshape(3, 2))
  got, want = _loops._host(tree), jax.device_get(tree)
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert isinstance(a, np.ndarray) and a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


def test_an_agreed_seconds_cadence_is_asked_only_every_n_steps():
  # (In one process the chief is this process; the real multi-process run is
  # tests/distribute/test_multiprocess.py.)
  from estlab._engine.loops import _AgreedTrigger  # pylint: disable=g-import-not-at-top
  from estlab.hooks import PeriodicTrigger  # pylint: disable=g-import-not-at-top
  due = _AgreedTrigger(PeriodicTrigger(every_secs=10, start_time=0.0),
                       check_every=5, start=0)
  assert [due(step, 100.0) for step in (1, 2, 3, 4)] == [False] * 4
  assert due(5, 100.0)        # a check step, 100 s after the start
  assert not due(10, 105.0)   # a check step, 5 s after the last save
  assert not due(12, 200.0)   # due by the clock, but not a check step
  assert due(17, 200.0)       # crossed 15 (steps_per_loop advances by more)


# --- The start checkpoint (TF's CheckpointSaverHook.after_create_session) ----
# tests/tf_reference/checkpoint_start_tf215.json: what tf.estimator 2.15 kept
# and told its listeners in the same runs (checkpoint_start_tf.py).
_TF_START = json.load(open(os.path.join(
    os.path.dirname(__file__), os.pardir, "tf_reference", "checkpoint_start_tf215.json")))


class _Listener(estlab.CheckpointSaverListener):
  """Records ``[method, step]``; asks to stop in ``after_save`` at ``stop_at``."""

  def __init__(self, log, stop_at=None):
    self.log, self.stop_at = log, stop_at

  def begin(self):
    self.log.append(["begin", None])

  def before_save(self, session, global_step_value):
    self.log.append(["before_save", int(global_step_value)])

  def after_save(self, session, global_step_value):
    self.log.append(["after_save", int(global_step_value)])
    return self.stop_at is not None and global_step_value == self.stop_at

  def end(self, session, global_step_value):
    self.log.append(["end", int(global_step_value)])


def _forever():
  x, y = regression_data(64)
  return itertools.cycle([({"x": x[i:i + 16]}, y[i:i + 16])
                          for i in range(0, 64, 16)])


def _estimator(model_dir, warm_start_from=None, **config):
  config.setdefault("progress_bar", False)
  return estlab.Estimator(linear_model_fn, model_dir, params={"learning_rate": 0.1},
                          config=estlab.RunConfig(tf_random_seed=0, **config),
                          warm_start_from=warm_start_from)


@pytest.mark.parametrize("name, steps, stop_at, config", [
    ("fresh_then_resumed", [20, 20], None, {}),  # RunConfig's default: 600 s
    # (resumed at a multiple of the cadence: TF's steps cadence counts from
    # the last save, estlab's from multiples; they agree there)
    ("every_10_steps_from_20", [20, 25], None, {"save_checkpoints_steps": 10}),
    ("keep_2_from_20", [20, 25], None, {"save_checkpoints_steps": 10,
                                        "keep_checkpoint_max": 2}),
    ("stop_at_start", [5], 0, {"save_checkpoints_steps": 2}),
])
def test_train_saves_at_its_start_as_tf(tmp_path, name, steps, stop_at, config):
  # A fresh model_dir gets the initial state as step 0; a resumed one is not
  # written again (TF re-saved the same state), but the listeners are called
  # around that step as TF called them; their stop request there is ignored.
  est = _estimator(tmp_path, **config)
  log, kept = [], []
  for n in steps:
    est.train(_forever, steps=n, saving_listeners=[_Listener(log, stop_at)])
    kept.append(estlab.checkpoint.Checkpointer(tmp_path).all_steps())
  assert kept == _TF_START[name]["kept"]
  assert log == _TF_START[name]["listener"]
  # step 0 holds the initial state: Dense's bias starts at zero
  if 0 in kept[-1]:
    ckpt = estlab.checkpoint.Checkpointer(tmp_path)
    at_0, last = ckpt.restore_params(step=0), ckpt.restore_params()
    assert not np.any(np.asarray(at_0["linear"]["bias"]))
    assert np.all(np.asarray(last["linear"]["bias"]) != 0)


def test_the_start_checkpoint_is_written_between_hooks_begin_and_after_create_session(
    tmp_path):
  seen = []

  class Sees(estlab.SessionRunHook):

    def begin(self):
      seen.append(["begin", estlab.checkpoint.latest_checkpoint(tmp_path) is not None])

    def after_create_session(self, session, coord):
      seen.append(["after_create_session",
                   estlab.checkpoint.latest_checkpoint(tmp_path) is not None])
  # (synchronous saves: an async one is on disk once its files are written)
  _estimator(tmp_path, async_checkpoints=False).train(_forever, steps=3,
                                                      hooks=[Sees()])
  assert seen == _TF_START["hook_sees"]


def test_the_start_checkpoint_holds_the_warm_started_parameters(tmp_path):
  _estimator(tmp_path / "source").train(_forever, steps=20)
  _estimator(tmp_path / "warm", warm_start_from=str(tmp_path / "source")).train(
      _forever, steps=5)
  assert estlab.checkpoint.Checkpointer(tmp_path / "warm").all_steps() == (
      _TF_START["warm_start"]["kept"])
  at_0 = estlab.checkpoint.Checkpointer(tmp_path / "warm").restore_params(step=0)
  source = estlab.checkpoint.Checkpointer(tmp_path / "source").restore_params()
  assert _TF_START["warm_start"]["w_at_0_equals_source"]
  assert _TF_START["warm_start"]["source_w_nonzero"]
  jax.tree.map(np.testing.assert_array_equal, at_0, source)
  assert any(np.any(np.asarray(leaf)) for leaf in jax.tree.leaves(source))


def test_without_a_cadence_only_the_end_is_saved(tmp_path):
  # TF wrote no checkpoint at all without save_checkpoints_steps/_secs (its
  # CheckpointSaverHook was not made; _TF_START["no_cadence"]); estlab saves
  # the end of each train call (evaluate needs one), and nothing at the start.
  assert _TF_START["no_cadence"]["kept"] == []
  est = _estimator(tmp_path, save_checkpoints_steps=None,
                   save_checkpoints_secs=None)
  log = []
  est.train(_forever, steps=20, saving_listeners=[_Listener(log)])
  est.train(_forever, steps=5, saving_listeners=[_Listener(log)])
  assert estlab.checkpoint.Checkpointer(tmp_path).all_steps() == [20, 25]
  assert log == [["begin", None], ["before_save", 20], ["after_save", 20],
                 ["end", 20], ["begin", None], ["before_save", 25],
                 ["after_save", 25], ["end", 25]]
