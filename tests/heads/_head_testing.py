"""Helpers for the head tests: run a head inside jax.jit; numpy references."""
import jax
import numpy as np
import optax

import estlab


def run(head, mode, logits, labels=None, features=None, **kwargs):
  """``create_estimator_spec`` inside ``jax.jit``.

  Returns:
    ``(loss, predictions, metrics)`` as numpy; metrics are computed values.
  """
  def step(features, logits, labels):
    spec = head.create_estimator_spec(
        features, mode, logits, labels,
        optimizer=optax.sgd(0.1) if mode == estlab.ModeKeys.TRAIN else None,
        **kwargs)
    metrics = {k: m.compute() for k, m in (spec.eval_metric_ops or {}).items()}
    return spec.loss, spec.predictions, metrics
  return jax.device_get(jax.jit(step)(features or {}, logits, labels))


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def sigmoid_xent(labels, logits):
  """TF's sigmoid_cross_entropy_with_logits."""
  return (np.maximum(logits, 0) - logits * labels +
          np.log1p(np.exp(-np.abs(logits))))


def wmean(values, weights):
  weights = np.broadcast_to(weights, values.shape)
  return np.sum(values * weights) / np.sum(weights)


def roc_auc(labels, scores, weights):
  """Exact weighted ROC AUC (pairs; ties count one half)."""
  pos, neg = labels.astype(bool), ~labels.astype(bool)
  sp, sn = scores[pos][:, None], scores[neg][None, :]
  wp, wn = weights[pos][:, None], weights[neg][None, :]
  wins = (sp > sn) + 0.5 * (sp == sn)
  return np.sum(wp * wn * wins) / (np.sum(wp) * np.sum(wn))
