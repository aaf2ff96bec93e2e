"""The training loop writes each summary late, but at its own step."""
import itertools

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
  from estlab import _loops  # pylint: disable=g-import-not-at-top
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
  from estlab._loops import _AgreedTrigger  # pylint: disable=g-import-not-at-top
  from estlab.hooks import PeriodicTrigger  # pylint: disable=g-import-not-at-top
  due = _AgreedTrigger(PeriodicTrigger(every_secs=10, start_time=0.0),
                       check_every=5, start=0)
  assert [due(step, 100.0) for step in (1, 2, 3, 4)] == [False] * 4
  assert due(5, 100.0)        # a check step, 100 s after the start
  assert not due(10, 105.0)   # a check step, 5 s after the last save
  assert not due(12, 200.0)   # due by the clock, but not a check step
  assert due(17, 200.0)       # crossed 15 (steps_per_loop advances by more)
