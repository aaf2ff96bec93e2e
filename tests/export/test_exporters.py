"""Exporters of EvalSpec: LatestExporter, FinalExporter (real exports)."""
import itertools
import os

import numpy as np
import pytest

import estlab
from _models import linear_model_fn, quiet, regression_data

X, Y = regression_data(64)


def _batches():
  return itertools.cycle([({"x": X[i:i + 16]}, Y[i:i + 16])
                          for i in range(0, 64, 16)])


def _receiver():
  return estlab.export.build_raw_serving_input_receiver_fn(
      {"x": np.zeros((1, 3), np.float32)})


def test_latest_keeps_the_newest_exports_and_final_exports_once(tmp_path):
  est = estlab.Estimator(linear_model_fn, tmp_path / "m", params={
      "learning_rate": 0.1}, config=quiet(save_checkpoints_steps=4))
  latest = estlab.export.LatestExporter("latest", _receiver(), exports_to_keep=2)
  final = estlab.export.FinalExporter("final", _receiver())
  _, exports = estlab.train_and_evaluate(
      est, estlab.TrainSpec(_batches, max_steps=12),
      estlab.EvalSpec(lambda: itertools.islice(_batches(), 4), throttle_secs=0,
                      exporters=[latest, final]))
  # Evaluations at 4, 8 and 12: three latest exports, the newest two kept.
  kept = sorted(os.listdir(tmp_path / "m" / "export" / "latest"))
  assert len(kept) == 2 and exports[0].endswith(kept[-1])
  assert os.listdir(tmp_path / "m" / "export" / "final") == [
      os.path.basename(exports[1])]
  served = estlab.export.load(exports[1]).signatures["serving_default"](
      {"x": X[:5]})
  expected = [p["pred"] for p in est.predict(
      lambda: [({"x": X[:5]}, None)])]
  np.testing.assert_allclose(served["pred"], expected, rtol=1e-5)


@pytest.mark.parametrize("make,match", [
    (lambda: estlab.export.LatestExporter("", _receiver()), "name=''"),
    (lambda: estlab.export.LatestExporter("a/b", _receiver()), "'a/b'"),
    (lambda: estlab.export.FinalExporter("final", None), "must be callable"),
    (lambda: estlab.export.LatestExporter("l", _receiver(), exports_to_keep=0),
     "exports_to_keep=0"),
])
def test_exporters_check_their_arguments(make, match):
  with pytest.raises((ValueError, TypeError), match=match):
    make()


def test_best_exports_improvements_only_starting_from_the_event_files(tmp_path):
  est = estlab.Estimator(linear_model_fn, tmp_path / "m", params={
      "learning_rate": 0.1}, config=quiet(save_checkpoints_steps=2))
  est.train(_batches, steps=4)
  eval_fn = lambda: itertools.islice(_batches(), 4)
  ckpt = {step: os.path.join(est.model_dir, str(step)) for step in (2, 4)}
  at = {step: est.evaluate(eval_fn, checkpoint_path=ckpt[step]) for step in (2, 4)}
  assert at[4]["loss"] < at[2]["loss"]  # (events at 2 and 4 are written)
  where = os.path.join(est.model_dir, "export", "best")
  best = estlab.export.BestExporter("best", _receiver(), exports_to_keep=None)
  # Step 4's own events are left out: the files' best is step 2, which it beats.
  assert best.export(est, where, ckpt[4], at[4], False) is not None
  assert best.export(est, where, ckpt[2], at[2], False) is None  # no better
  assert len(os.listdir(where)) == 1
  fresh = estlab.export.BestExporter("best", _receiver())
  assert fresh.export(est, where, ckpt[2], at[2], False) is None  # step 4 read back
  larger_mse = lambda best_eval_result, current_eval_result: (
      current_eval_result["mse"] > best_eval_result["mse"])
  other = estlab.export.BestExporter("worst", _receiver(), compare_fn=larger_mse,
                                     event_file_pattern=None)
  assert other.export(est, where + "2", ckpt[4], at[4], False) is not None
  assert other.export(est, where + "2", ckpt[2], at[2], False) is not None
  with pytest.raises(ValueError, match="no 'loss' to compare"):
    estlab.export.BestExporter("b", _receiver()).export(
        est, where, ckpt[4], {"global_step": 4, "mse": 1.0}, False)
