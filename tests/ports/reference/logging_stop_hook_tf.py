"""TF 2.15 reference run of guide/migrate/logging_stop_hook.ipynb (TF1 half).

The notebook's "TF1: Estimator.train" cells, unchanged (the data is the
notebook's own inline lists), with TF's log records of the two
LoggingTensorHooks captured. Writes logging_stop_hook.json next to this file.
Run: /work/tf215/bin/python tests/ports/reference/logging_stop_hook_tf.py
"""
import json
import logging
import os

import tensorflow as tf
import tensorflow.compat.v1 as tf1

HERE = os.path.dirname(os.path.abspath(__file__))

features = [[1., 1.5], [2., 2.5], [3., 3.5]]
labels = [[0.3], [0.5], [0.7]]

# define input function
def _input_fn():
  return tf1.data.Dataset.from_tensor_slices((features, labels)).batch(1)

def _model_fn(features, labels, mode):
  dense = tf1.layers.Dense(1)
  logits = dense(features)
  loss = tf1.losses.mean_squared_error(labels=labels, predictions=logits)
  optimizer = tf1.train.AdagradOptimizer(0.05)
  train_op = optimizer.minimize(loss, global_step=tf1.train.get_global_step())

  # build the stop hook
  stop_hook = tf1.train.StopAtStepHook(num_steps=2)

  # access tensors to be logged by names
  kernel_name = tf.identity(dense.weights[0])
  bias_name = tf.identity(dense.weights[1])
  logging_weight_hook = tf1.train.LoggingTensorHook(
      tensors=[kernel_name, bias_name],
      every_n_iter=1)
  # log training loss by the tensor object
  logging_loss_hook = tf1.train.LoggingTensorHook(
      {'loss from LoggingTensorHook': loss},
      every_n_secs=3)

  # pass all hooks to EstimatorSpec
  return tf1.estimator.EstimatorSpec(mode,
                                     loss=loss,
                                     train_op=train_op,
                                     training_hooks=[stop_hook,
                                                     logging_weight_hook,
                                                     logging_loss_hook])


class _Records(logging.Handler):
  def __init__(self):
    super().__init__()
    self.lines = []

  def emit(self, record):
    self.lines.append(record.getMessage())


if __name__ == '__main__':
  records = _Records()
  logging.getLogger('tensorflow').addHandler(records)
  tf1.logging.set_verbosity(tf1.logging.INFO)

  estimator = tf1.estimator.Estimator(model_fn=_model_fn)

  # the training will stop after 2 steps, and the weights/loss are logged as well
  estimator.train(_input_fn)

  logged = [line for line in records.lines
            if 'Identity' in line or 'LoggingTensorHook' in line]
  with open(os.path.join(HERE, 'logging_stop_hook.json'), 'w') as f:
    json.dump({'tensorflow': tf.__version__, 'runs': [{
        'global_step': int(estimator.get_variable_value('global_step')),
        'weight_lines': [l for l in logged if 'Identity' in l],
        'loss_lines': [l for l in logged if 'loss from' in l]}]},
              f, indent=1, sort_keys=True)
