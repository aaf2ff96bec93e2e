"""estlab.export.EvalOutput: TF's output keys, metric values, and a signature
that serves a batch's loss and metrics (not padded)."""
import json
import pathlib

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab

_CASES = json.loads((pathlib.Path(__file__).resolve().parent.parent /
                     "tf_reference" / "eval_output_tf215.json"
                     ).read_text())["cases"]


def _arg(spec, pair=False):
  one = np.float32(1.0)
  value = (one, None) if pair else one
  if spec is None or spec == "tensor":
    return None if spec is None else value
  return {tuple(k) if isinstance(k, list) else k: value for k in spec}


@pytest.mark.parametrize("case", _CASES, ids=range(len(_CASES)))
def test_output_keys_are_tfs(case):
  out = estlab.export.EvalOutput(
      loss=_arg(case["loss"]), predictions=_arg(case["predictions"]),
      metrics=_arg(case["metrics"], pair=True))
  want = dict(case["keys"])
  if want["metrics"] is not None:  # JAX has no update ops: TF's values only
    want["metrics"] = [k for k in want["metrics"] if not k.endswith("update_op")]
  got = {name: None if getattr(out, name) is None else sorted(getattr(out, name))
         for name in ("loss", "predictions", "metrics")}
  assert got == want
  assert sorted(out.device_outputs()) == sorted(
      k for keys in want.values() if keys for k in keys)
  assert out.method_name == "tensorflow/supervised/eval"
  assert isinstance(out, estlab.export.ExportOutput)


def test_metric_states_are_computed():
  labels = np.array([1.0, 2.0, 4.0], np.float32)
  predictions = np.array([1.5, 2.0, 3.0], np.float32)
  out = estlab.export.EvalOutput(metrics={
      "mae": estlab.metrics.mean_absolute_error(labels, predictions),
      "mean": estlab.metrics.mean(predictions),
      "given": np.float32(7.0)})
  assert float(out.metrics["metrics/mae/value"]) == pytest.approx(0.5)
  assert float(out.metrics["metrics/mean/value"]) == pytest.approx(6.5 / 3)
  assert float(out.metrics["metrics/given/value"]) == 7.0


@pytest.mark.parametrize("kwargs,error,match", [
    ({}, ValueError, "needs loss, predictions or metrics"),
    ({"loss": {3: np.float32(1)}}, ValueError, "key must be a non-empty string"),
    ({"predictions": [1.0, 2.0]}, TypeError, "must be an array"),
    ({"predictions": np.array(["a"])}, TypeError, "strings"),
    ({"metrics": {"m": (1, 2, 3)}}, ValueError, "\\(value, update_op\\) pair"),
])
def test_bad_arguments_say_the_fix(kwargs, error, match):
  with pytest.raises(error, match=match):
    estlab.export.EvalOutput(**kwargs)


class _AutoEncoder(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(3, name="decode")(nn.Dense(2, name="encode")(x))


def _autoencoder_fn(features, labels, mode):
  """An autoencoder: its PREDICT signature serves the reconstruction error."""
  del labels
  x = features["x"]
  recon = _AutoEncoder()(x)
  error = jnp.mean(jnp.square(recon - x), axis=1)
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions={"recon": recon}, export_outputs={
        "serving_default": estlab.export.PredictOutput({"recon": recon}),
        "reconstruction": estlab.export.EvalOutput(
            loss=jnp.mean(error), predictions={"error": error},
            metrics={"mae": estlab.metrics.mean_absolute_error(x, recon)})})
  return estlab.EstimatorSpec(mode, loss=jnp.mean(error),
                              train_op=optax.adam(0.05))


def test_a_signature_serves_the_loss_and_metrics_of_the_batch_sent(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(32, 3)).astype(np.float32)
  estimator = estlab.Estimator(_autoencoder_fn, model_dir=str(tmp_path / "m"),
                               config=estlab.RunConfig(progress_bar=False))
  estimator.train(estlab.inputs.numpy_input_fn(
      {"x": x}, batch_size=16, num_epochs=None, shuffle=False), steps=20)
  path = estimator.export_saved_model(
      str(tmp_path / "e"),
      estlab.export.build_raw_serving_input_receiver_fn({"x": x[:1]}))
  imported = estlab.export.load(path)
  sig = imported.signatures["reconstruction"]
  assert sig.method_name == "tensorflow/supervised/eval"
  assert sorted(sig.outputs) == ["loss", "metrics/mae/value",
                                 "predictions/error"]
  recon = np.stack([p["recon"] for p in estimator.predict(
      estlab.inputs.numpy_input_fn({"x": x[:3]}, batch_size=3,
                                   shuffle=False))])
  out = sig({"x": x[:3]})  # 3 examples: no padding to 4 for the scalars
  error = np.mean(np.square(recon - x[:3]), axis=1)
  np.testing.assert_allclose(out["predictions/error"], error, rtol=1e-5,
                             atol=1e-6)
  assert float(out["loss"]) == pytest.approx(float(error.mean()), rel=1e-5)
  assert float(out["metrics/mae/value"]) == pytest.approx(
      float(np.abs(recon - x[:3]).mean()), rel=1e-5)
  np.testing.assert_allclose(
      imported.signatures["serving_default"]({"x": x[:3]})["recon"], recon,
      rtol=1e-5, atol=1e-6)
