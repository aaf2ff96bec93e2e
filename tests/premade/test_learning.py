"""Each premade learns the small table well above the base rate."""
import numpy as np
import optax
import pytest

import estlab
from _data import columns, input_fn, table


def _config():
  return estlab.RunConfig(tf_random_seed=0, progress_bar=False)


CLASSIFIERS = {
    "linear": lambda: estlab.LinearClassifier(columns()[0], config=_config()),
    # TF 2.15's DNN default (Adagrad at 0.001) is slow on 400 steps; as a TF
    # user would, pass an optimizer (an optax one here, or a name).
    "dnn": lambda: estlab.DNNClassifier([32, 16], columns()[1], config=_config(),
                                        optimizer=optax.adam(0.01)),
    "combined": lambda: estlab.DNNLinearCombinedClassifier(
        linear_feature_columns=columns()[0], dnn_feature_columns=columns()[1],
        dnn_hidden_units=[32, 16], dnn_optimizer="Adam", config=_config()),
}


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classifier_learns(name):
  features, labels = table(2000, seed=1)
  test_features, test_labels = table(1000, seed=2)
  est = CLASSIFIERS[name]()
  est.train(input_fn(features, labels["binary"], epochs=None, shuffle=True),
            steps=400)
  metrics = est.evaluate(input_fn(test_features, test_labels["binary"]))
  base = max(np.mean(test_labels["binary"]), 1 - np.mean(test_labels["binary"]))
  assert metrics["accuracy"] > base + 0.2, metrics
  assert metrics["auc"] > 0.9, metrics
  np.testing.assert_allclose(metrics["accuracy_baseline"], base, rtol=1e-5)


def test_regressors_beat_the_baseline():
  features, labels = table(2000, seed=1)
  test_features, test_labels = table(1000, seed=2)
  losses = {}
  for name, est in {
      "baseline": estlab.BaselineRegressor(config=_config()),
      "linear": estlab.LinearRegressor(columns()[0], config=_config()),
      "dnn": estlab.DNNRegressor([32, 16], columns()[1], config=_config(),
                                 optimizer=optax.adam(0.01))}.items():
    est.train(input_fn(features, labels["regression"], epochs=None,
                       shuffle=True), steps=400)
    losses[name] = est.evaluate(
        input_fn(test_features, test_labels["regression"]))["average_loss"]
  assert losses["linear"] < 0.3 * losses["baseline"], losses
  assert losses["dnn"] < 0.5 * losses["baseline"], losses


def test_baseline_classifier_learns_the_prior():
  features, labels = table(1000, seed=1)
  est = estlab.BaselineClassifier(config=_config())
  est.train(input_fn(features, labels["binary"], epochs=None, shuffle=True),
            steps=300)
  prior = np.mean(labels["binary"])
  probs = next(iter(est.predict(input_fn(features, None))))["probabilities"]
  np.testing.assert_allclose(probs[1], prior, atol=0.05)
