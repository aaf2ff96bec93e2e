"""Heads in a full Estimator: labels encoded on the host, train, eval, predict."""
import flax.linen as nn
import numpy as np
import optax

import estlab
from estlab import heads
from estlab._engine.host_step import HostStep


class HeadEstimator(estlab.Estimator):
  """An Estimator whose host side encodes labels with the head."""

  def __init__(self, head, model_dir):
    self.head = head

    def model_fn(features, labels, mode):
      logits = nn.Dense(head.logits_dimension)(features["x"])
      return head.create_estimator_spec(features, mode, logits, labels,
                                        optimizer=optax.adam(0.1))
    super().__init__(model_fn, model_dir,
                     config=estlab.RunConfig(progress_bar=False))
    self._host = HostStep(transform=lambda features, labels, mode: (
        features, head.transform_labels(labels)), head=head)


def _data(n=64, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 2)).astype(np.float32)
  positive = x[:, 0] + x[:, 1] > 0
  return x, np.where(positive, "yes", "no").astype(object), positive


def _batches(x, labels, weights=None, size=16):
  def input_fn():
    for i in range(0, len(x), size):
      features = {"x": x[i:i + size]}
      if weights is not None:
        features["w"] = weights[i:i + size]
      yield (features, labels if labels is None else
             {k: v[i:i + size] for k, v in labels.items()}
             if isinstance(labels, dict) else labels[i:i + size])
  return input_fn


def test_binary_head_with_vocabulary_trains_evaluates_predicts(tmp_path):
  x, labels, positive = _data()
  head = heads.BinaryClassHead(label_vocabulary=["no", "yes"],
                               weight_column="w", thresholds=[0.5])
  est = HeadEstimator(head, tmp_path)
  weights = np.ones(len(x), np.float32)
  train = _batches(x, labels, weights)
  est.train(lambda: (b for _ in range(10) for b in train()), steps=40)
  result = est.evaluate(_batches(x, labels, weights))
  assert set(result) == {
      "accuracy", "accuracy_baseline", "auc", "auc_precision_recall",
      "average_loss", "label/mean", "precision", "prediction/mean", "recall",
      "accuracy/positive_threshold_0.5", "precision/positive_threshold_0.5",
      "recall/positive_threshold_0.5", "loss", "global_step"}
  assert result["global_step"] == 40 and result["accuracy"] > 0.9
  np.testing.assert_allclose(result["label/mean"], positive.mean(), rtol=1e-6)
  np.testing.assert_allclose(result["accuracy_baseline"],
                             max(positive.mean(), 1 - positive.mean()), rtol=1e-6)
  batches = est.predict(_batches(x, None, weights), yield_single_examples=False)
  classes = np.concatenate([head.postprocess_predictions(b)["classes"]
                            for b in batches])
  assert classes.shape == (64, 1)
  assert np.mean(classes[:, 0] == labels) > 0.9


def test_multi_head_with_dict_labels_trains_and_evaluates(tmp_path):
  x, _, _ = _data(seed=1)
  head = heads.MultiHead(
      [heads.MultiClassHead(3, label_vocabulary=["lo", "mid", "hi"], name="band"),
       heads.RegressionHead(name="sum")], head_weights=[1.0, 0.5])
  total = x.sum(-1)
  band = np.array(["lo", "mid", "hi"], dtype=object)[np.digitize(total, [-0.5, 0.5])]
  data = {"band": band, "sum": total}
  est = HeadEstimator(head, tmp_path)
  train = _batches(x, data)
  est.train(lambda: (b for _ in range(10) for b in train()), steps=40)
  result = est.evaluate(_batches(x, data))
  assert {"loss/band", "loss/sum", "accuracy/band", "average_loss/sum",
          "label/mean/sum"} <= set(result)
  assert result["average_loss/sum"] < 0.1 and result["accuracy/band"] > 0.7
  np.testing.assert_allclose(result["loss"], result["loss/band"] +
                             0.5 * result["loss/sum"], rtol=1e-4)


def test_head_in_a_plain_model_fn_predicts_tf_keys_with_class_names(tmp_path):
  # TF 2.15's MultiClassHead predictions in any model_fn (as recorded in
  # tests/ports/reference/extra_multi_head.json): the string classes too,
  # which estlab adds on the host after the step (spec.host_postprocess).
  x, _, positive = _data()
  ids = positive.astype(np.int64)
  head = heads.MultiClassHead(3, label_vocabulary=["lo", "hi", "never"])

  def model_fn(features, labels, mode):
    logits = nn.Dense(head.logits_dimension)(features["x"])
    return head.create_estimator_spec(features, mode, logits, labels,
                                      optimizer=optax.adam(0.1))

  est = estlab.Estimator(model_fn, str(tmp_path),
                         config=estlab.RunConfig(progress_bar=False))
  train = _batches(x, ids)
  est.train(lambda: (b for _ in range(10) for b in train()), steps=40)
  preds = list(est.predict(_batches(x, None)))
  assert set(preds[0]) == {"logits", "probabilities", "class_ids", "classes",
                           "all_class_ids", "all_classes"}
  assert preds[0]["all_classes"].tolist() == ["lo", "hi", "never"]
  classes = [p["classes"][0] for p in preds]
  assert all(type(c) is str for c in classes)  # pylint: disable=unidiomatic-typecheck
  assert np.mean(np.array(classes) == np.where(positive, "hi", "lo")) > 0.9
  only = list(est.predict(_batches(x, None), predict_keys=["classes"]))
  assert [p["classes"][0] for p in only] == classes and set(only[0]) == {
      "classes"}
  probs = next(iter(est.predict(_batches(x, None),
                                predict_keys=["probabilities"])))
  assert set(probs) == {"probabilities"}
