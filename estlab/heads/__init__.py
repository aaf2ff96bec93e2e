"""Heads: tf.estimator's loss, metrics and predictions on top of logits.

``head.create_estimator_spec(features, mode, logits, labels, optimizer=...)``
inside a model_fn gives the ``EstimatorSpec`` with TF's loss and metric keys.
Strings and value errors cannot enter ``jax.jit``, so each head also has two
host-side steps: ``transform_labels`` (before the step: vocabulary lookup and
label checks, e.g. in a premade's ``HostStep``) and
``postprocess_predictions`` (after it: ``classes`` / ``all_classes`` names).

Example:
  >>> import numpy as np, jax.numpy as jnp
  >>> from estlab import heads
  >>> head = heads.BinaryClassHead(label_vocabulary=['no', 'yes'])
  >>> labels = head.transform_labels(np.array(['yes', 'no']))
  >>> round(float(head.loss(labels, jnp.array([[2.], [-2.]]))), 4)
  0.1269
  >>> head.postprocess_predictions({'class_ids': np.array([[1]])})['classes']
  array([['yes']], dtype=object)
"""
from estlab.heads._base import Head, Reduction
from estlab.heads._binary_class import AccuracyBaseline, BinaryClassHead
from estlab.heads._multi_class import MultiClassHead
from estlab.heads._multi_head import MultiHead
from estlab.heads._multi_label import MultiLabelHead
from estlab.heads._regression import (LogisticRegressionHead,
                                      PoissonRegressionHead, RegressionHead,
                                      log_poisson_loss)
from estlab.heads._sequential import SequentialHeadWrapper

SUM_OVER_BATCH_SIZE = Reduction.SUM_OVER_BATCH_SIZE
SUM = Reduction.SUM

__all__ = [
    "Head", "BinaryClassHead", "MultiClassHead", "MultiLabelHead",
    "RegressionHead", "PoissonRegressionHead", "LogisticRegressionHead",
    "MultiHead", "Reduction", "SUM_OVER_BATCH_SIZE", "SUM", "AccuracyBaseline",
    "log_poisson_loss", "SequentialHeadWrapper",
]
