"""Tests for estlab.metrics: values against numpy, streaming merges, jit."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from estlab import metrics


def _classes(rng, n):
  return {"labels": rng.integers(0, 4, n), "predictions": rng.integers(0, 4, n)}


def _binary(rng, n):
  labels = rng.random(n) < 0.4
  return {"labels": labels, "predictions": rng.random(n) < 0.5 + 0.3 * labels}


def _probs(rng, n):
  labels = (rng.random(n) < 0.4).astype(np.int32)
  probs = 1 / (1 + np.exp(-(2.0 * labels - 1.0 + 1.5 * rng.standard_normal(n))))
  return {"labels": labels, "predictions": probs.astype(np.float32)}


def _regression(rng, n):
  labels = rng.standard_normal((n, 1)).astype(np.float32)
  noise = rng.standard_normal((n, 1)).astype(np.float32)
  return {"labels": labels, "predictions": labels + noise}


def _values(rng, n):
  return {"values": rng.standard_normal((n, 3)).astype(np.float32)}


def _avg(x, w):
  w = np.broadcast_to(np.reshape(w, (-1,) + (1,) * (x.ndim - 1)), x.shape)
  return np.sum(w * x) / np.sum(w)


def _np_precision(labels, pred, w):
  return np.sum(w * (labels & pred)) / np.sum(w * pred)


def _np_recall(labels, pred, w):
  return np.sum(w * (labels & pred)) / np.sum(w * labels)


def _np_rank_auc(labels, scores, w):
  """Exact weighted ROC AUC: P(score_pos > score_neg), ties count half."""
  order = np.argsort(scores, kind="stable")
  scores, labels, w = scores[order], labels[order].astype(bool), w[order]
  neg_below = np.cumsum(np.where(labels, 0.0, w))  # assumes no ties (floats)
  return np.sum(w[labels] * neg_below[labels]) / (
      np.sum(w[labels]) * np.sum(w[~labels]))


def _np_average_precision(labels, scores, w):
  order = np.argsort(-scores, kind="stable")
  labels, w = labels[order].astype(bool), w[order]
  tp = np.cumsum(np.where(labels, w, 0.0))
  precision = tp / np.cumsum(w)
  return np.sum(np.where(labels, w, 0.0) * precision) / tp[-1]


# id -> (batch maker, build(batch, weights), numpy reference(batch, weights)).
CASES = {
    "mean": (_values, lambda b, w: metrics.mean(b["values"], w),
             lambda b, w: _avg(b["values"], w)),
    "accuracy": (
        _classes, lambda b, w: metrics.accuracy(b["labels"], b["predictions"], w),
        lambda b, w: _avg(b["labels"] == b["predictions"], w)),
    "accuracy_threshold": (
        _probs,
        lambda b, w: metrics.accuracy(b["labels"], b["predictions"], w,
                                      threshold=0.5),
        lambda b, w: _avg(b["labels"] == (b["predictions"] > 0.5), w)),
    "precision": (
        _binary, lambda b, w: metrics.precision(b["labels"], b["predictions"], w),
        lambda b, w: _np_precision(b["labels"], b["predictions"], w)),
    "precision_threshold": (
        _probs,
        lambda b, w: metrics.precision(b["labels"], b["predictions"], w,
                                       threshold=0.3),
        lambda b, w: _np_precision(b["labels"] > 0, b["predictions"] > 0.3, w)),
    "recall": (
        _binary, lambda b, w: metrics.recall(b["labels"], b["predictions"], w),
        lambda b, w: _np_recall(b["labels"], b["predictions"], w)),
    "recall_threshold": (
        _probs,
        lambda b, w: metrics.recall(b["labels"], b["predictions"], w,
                                    threshold=0.7),
        lambda b, w: _np_recall(b["labels"] > 0, b["predictions"] > 0.7, w)),
    "mse": (
        _regression,
        lambda b, w: metrics.mean_squared_error(b["labels"], b["predictions"], w),
        lambda b, w: _avg((b["labels"] - b["predictions"]) ** 2, w)),
    "rmse": (
        _regression,
        lambda b, w: metrics.root_mean_squared_error(
            b["labels"], b["predictions"], w),
        lambda b, w: np.sqrt(_avg((b["labels"] - b["predictions"]) ** 2, w))),
    "mae": (
        _regression,
        lambda b, w: metrics.mean_absolute_error(b["labels"], b["predictions"], w),
        lambda b, w: _avg(np.abs(b["labels"] - b["predictions"]), w)),
    "auc_roc": (
        _probs, lambda b, w: metrics.auc(b["labels"], b["predictions"], w),
        lambda b, w: _np_rank_auc(b["labels"], b["predictions"], w)),
}
_TOL = {"auc_roc": 5e-3}  # 600 examples, 200 buckets; 2e-3 checked at scale.


N = 600  # One batch size everywhere, so eager ops compile once per shape.


def _batch_and_weights(case, n=N, seed=0):
  rng = np.random.default_rng(seed)
  return CASES[case][0](rng, n), rng.uniform(0.0, 2.0, n).astype(np.float32)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_numpy_reference(case, weighted):
  _, build, reference = CASES[case]
  batch, w = _batch_and_weights(case)
  m = build(batch, w if weighted else None)
  value = m.compute()
  expected = reference(batch, w if weighted else np.ones_like(w))
  assert value.shape == () and value.dtype == jnp.float32
  np.testing.assert_allclose(value, expected, rtol=1e-5,
                             atol=_TOL.get(case, 1e-5))


@pytest.mark.parametrize("case", sorted(CASES))
def test_merged_batches_equal_one_shot_and_zeros_are_identity(case):
  _, build, _ = CASES[case]
  batch, w = _batch_and_weights(case, seed=1)
  cuts = [0, N // 3, 2 * N // 3, N]
  parts = [build(jax.tree.map(lambda x: x[a:b], batch), w[a:b])
           for a, b in zip(cuts[:-1], cuts[1:])]
  whole = build(batch, w)
  zeros = jax.tree.map(jnp.zeros_like,
                       jax.eval_shape(lambda b: build(b, w), batch))
  merged = zeros
  for part in parts:
    merged = merged.merge(part)
  regrouped = parts[0].merge(parts[1].merge(parts[2])).merge(zeros)
  for m in (merged, regrouped, zeros.merge(whole)):
    np.testing.assert_allclose(m.compute(), whole.compute(), rtol=1e-5)
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5,
                                   atol=1e-4), m, whole)
  assert jax.tree.structure(whole.empty()) == jax.tree.structure(zeros)
  jax.tree.map(np.testing.assert_array_equal, whole.empty(), zeros)


def test_eval_metric_ops_build_merge_compute_inside_jit():
  # The engine's loop: a dict of metrics per batch, merged and computed in jit.
  data = {case: _batch_and_weights(case, seed=2) for case in CASES}

  def model_fn(batch):
    return {case: CASES[case][1](*batch[case]) for case in CASES}

  thirds = [jax.tree.map(lambda x, i=i: x[i * N // 3:(i + 1) * N // 3], data)
            for i in range(3)]

  @jax.jit
  def step(acc, batch):
    return jax.tree.map(lambda a, m: a.merge(m), acc, model_fn(batch),
                        is_leaf=lambda x: isinstance(x, metrics.Metric))

  acc = jax.tree.map(jnp.zeros_like, jax.eval_shape(model_fn, thirds[0]))
  for batch in thirds:
    acc = step(acc, batch)
  values = jax.jit(lambda ops: {k: m.compute() for k, m in ops.items()})(acc)
  assert step._cache_size() == 1  # One compilation for equal batch shapes.
  for case, (batch, w) in data.items():
    np.testing.assert_allclose(values[case], CASES[case][2](batch, w),
                               rtol=1e-5, atol=_TOL.get(case, 1e-5))


@pytest.mark.parametrize("case", sorted(CASES))
def test_empty_state_computes_zero_not_nan(case):
  _, build, _ = CASES[case]
  batch, w = _batch_and_weights(case)
  empty = build(batch, w).empty()
  assert float(empty.compute()) == 0.0
  zero_weights = build(batch, np.zeros_like(w))
  assert float(zero_weights.compute()) == 0.0


def test_precision_without_positive_predictions_is_zero():
  m = metrics.precision(np.array([1, 0, 1]), np.array([0, 0, 0]))
  assert float(m.compute()) == 0.0


def test_auc_matches_keras_docstring_example():
  # tf.keras.metrics.AUC(num_thresholds=3) on these values gives 0.75.
  labels, preds = [0, 0, 1, 1], [0, 0.5, 0.3, 0.9]
  roc = {s: float(metrics.auc(labels, preds, num_thresholds=3,
                              summation_method=s).compute())
         for s in ("careful_interpolation", "interpolation", "trapezoidal",
                   "minoring", "majoring")}
  assert roc == pytest.approx({"careful_interpolation": 0.75,
                               "interpolation": 0.75, "trapezoidal": 0.75,
                               "minoring": 0.5, "majoring": 1.0})
  m = metrics.auc(labels, preds, num_thresholds=3)
  np.testing.assert_array_equal(m.true_positives, [2, 1, 0])
  np.testing.assert_array_equal(m.false_positives, [2, 0, 0])
  np.testing.assert_array_equal(m.true_negatives, [0, 2, 2])
  np.testing.assert_array_equal(m.false_negatives, [0, 1, 2])


def test_auc_confusion_counts_count_predictions_above_each_threshold():
  batch, w = _batch_and_weights("auc_roc", seed=3)
  labels, preds = batch["labels"].astype(bool), batch["predictions"]
  m = metrics.auc(labels, preds, w, num_thresholds=50)
  thresholds = np.array([-1e-7] + [i / 49 for i in range(1, 49)] + [1 + 1e-7])
  above = preds[None, :] > thresholds[:, None]
  for counts, mask in ((m.true_positives, above & labels),
                       (m.false_positives, above & ~labels),
                       (m.true_negatives, ~above & ~labels),
                       (m.false_negatives, ~above & labels)):
    np.testing.assert_allclose(counts, (mask * w).sum(axis=1), rtol=1e-4,
                               atol=1e-2)


def test_auc_roc_and_pr_at_scale():
  batch, w = _batch_and_weights("auc_roc", n=100_000, seed=4)
  labels, preds = batch["labels"], batch["predictions"]
  roc = metrics.auc(labels, preds, w)
  assert abs(float(roc.compute()) - _np_rank_auc(labels, preds, w)) < 2e-3
  pr = metrics.auc(labels, preds, w, curve="PR")
  ap = _np_average_precision(labels, preds, w)
  assert abs(float(pr.compute()) - ap) < 0.02
  lower = float(metrics.auc(labels, preds, w, summation_method="minoring")
                .compute())
  upper = float(metrics.auc(labels, preds, w, summation_method="majoring")
                .compute())
  assert lower <= float(roc.compute()) <= upper


def test_auc_perfect_and_random_separation():
  rng = np.random.default_rng(5)
  labels = rng.random(20_000) < 0.3
  perfect = np.where(labels, 0.9, 0.1)
  for curve in ("ROC", "PR"):
    assert float(metrics.auc(labels, perfect, curve=curve).compute()) == (
        pytest.approx(1.0, abs=1e-6))
  noise = rng.random(20_000)
  assert float(metrics.auc(labels, noise).compute()) == pytest.approx(0.5, abs=0.02)
  assert float(metrics.auc(labels, noise, curve="pr").compute()) == (
      pytest.approx(labels.mean(), abs=0.02))


def test_weights_broadcast_per_example_to_multi_column_labels():
  rng = np.random.default_rng(6)
  labels = rng.standard_normal((50, 3)).astype(np.float32)
  preds = rng.standard_normal((50, 3)).astype(np.float32)
  w = rng.uniform(0, 1, 50).astype(np.float32)
  expected = _avg((labels - preds) ** 2, w)
  for weights in (w, w[:, None]):
    np.testing.assert_allclose(
        metrics.mean_squared_error(labels, preds, weights).compute(), expected,
        rtol=1e-5)
  # Labels [B, 1] against predictions [B] and weights [B, 1].
  np.testing.assert_allclose(
      metrics.mean_absolute_error(labels[:, :1], preds[:, 0], w[:, None])
      .compute(), _avg(np.abs(labels[:, 0] - preds[:, 0]), w), rtol=1e-5)


def test_bad_weights_shape_names_both_shapes():
  with pytest.raises(ValueError, match=r"\(7,\).*\(5, 3\)"):
    metrics.mean(np.zeros((5, 3)), np.ones(7))


def test_mismatched_labels_and_predictions_name_both_shapes():
  with pytest.raises(ValueError, match=r"\(4,\).*\(4, 2\)"):
    metrics.accuracy(np.zeros(4), np.zeros((4, 2)))


def test_bad_auc_configuration_is_a_clear_error():
  with pytest.raises(ValueError, match="'RCO'"):
    metrics.auc([0, 1], [0.2, 0.8], curve="RCO")
  with pytest.raises(ValueError, match="'riemann'"):
    metrics.auc([0, 1], [0.2, 0.8], summation_method="riemann")
  with pytest.raises(ValueError, match="num_thresholds=1"):
    metrics.auc([0, 1], [0.2, 0.8], num_thresholds=1)


def test_merging_different_configurations_is_an_error():
  a = metrics.precision([1, 0], [0.6, 0.2], threshold=0.5)
  b = metrics.precision([1, 0], [0.6, 0.2], threshold=0.3)
  with pytest.raises(ValueError, match="same configuration"):
    a.merge(b)


def test_metric_base_is_abstract():
  with pytest.raises(TypeError):
    metrics.Metric()


def test_v1_names_take_tfs_graph_arguments_and_index_as_value_update_pairs():
  # tensorflow/models custom_estimator.py: tf.compat.v1.metrics.accuracy(
  # labels=labels, predictions=predicted_classes, name='acc_op') and
  # tf.summary.scalar('accuracy', accuracy[1]).
  acc = metrics.accuracy(labels=jnp.array([1, 0, 1]),
                         predictions=jnp.array([1, 1, 1]), name="acc_op",
                         metrics_collections=None, updates_collections=None)
  assert isinstance(acc, metrics.Accuracy)
  assert float(acc[1]) == float(acc[0]) == pytest.approx(2 / 3)
  auc = metrics.auc(jnp.array([0, 1]), jnp.array([0.2, 0.9]), name="auc",
                    num_thresholds=50)
  assert auc.num_thresholds == 50
  with pytest.raises(IndexError, match="index 0 or 1"):
    acc[2]
  with pytest.raises(TypeError, match="unexpected keyword argument 'nmae'"):
    metrics.mean(jnp.ones(2), nmae="typo")
