"""The real TensorBoard program shows what an Estimator writes, while it trains."""
import itertools

import numpy as np

import _tensorboard
import estlab
from _models import batches_input_fn, linear_model_fn, quiet, regression_data


def test_tensorboard_serves_train_loss_live_and_eval_metrics(tmp_path):
  x, y = regression_data(64)
  est = estlab.Estimator(linear_model_fn, tmp_path, config=quiet(save_summary_steps=5),
                         params={"learning_rate": 0.1})
  seen_during_training = []

  class WaitForTensorBoard(estlab.SessionRunHook):
    """At step 15, pauses training until TensorBoard shows the step-10 loss
    (summaries are written once their step is done, a few steps late)."""

    def after_run(self, run_context, run_values):
      if run_context.global_step == 15:
        seen_during_training.extend(tb.wait_for_scalar(".", "loss", step=10,
                                                       timeout=60))

  with _tensorboard.start_tensorboard(tmp_path) as tb:
    forever = lambda: itertools.repeat(({"x": x[:16]}, y[:16]))
    est.train(forever, steps=20, hooks=[WaitForTensorBoard()])
    metrics = est.evaluate(batches_input_fn(x, y))
    assert [s for s, _ in seen_during_training] == [5, 10]
    loss = tb.wait_for_scalar(".", "loss", step=20, timeout=60)
    assert [s for s, _ in loss] == [5, 10, 15, 20]
    assert loss[-1][1] < loss[0][1]
    mse = tb.wait_for_scalar("eval", "mse", step=20, timeout=60)
    np.testing.assert_allclose(mse[-1][1], metrics["mse"], rtol=1e-5)
    assert "global_step/sec" in tb.runs_and_tags()["."]
