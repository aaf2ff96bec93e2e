"""Records TF 2.15's EvalOutput output keys, for tests/export/test_eval_output.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/eval_output_tf.py
writes eval_output_tf215.json next to this file: per case, the arguments
(``loss``, ``predictions``, ``metrics``: each None, "tensor", or a list of
keys, a key being a string or a list of strings for a tuple; a metric is a
``(value, update_op)`` pair) and the keys of TF's ``EvalOutput.loss``,
``.predictions`` and ``.metrics``.
"""
import json
import os

import tensorflow as tf

CASES = [
    {"loss": "tensor", "predictions": "tensor", "metrics": None},
    {"loss": ["loss", "aux"], "predictions": ["a", ["head", "probabilities"],
                                              "predictions/x"],
     "metrics": ["mae", ["head", "auc"], "metrics/acc"]},
    {"loss": None, "predictions": None, "metrics": "tensor"},
    {"loss": ["my_loss"], "predictions": None, "metrics": None},
]


def _key(key):
  return tuple(key) if isinstance(key, list) else key


def _arg(spec, pair=False):
  one = tf.constant(1.0)
  value = (one, tf.constant(0.0)) if pair else one
  if spec is None or spec == "tensor":
    return None if spec is None else value
  return {_key(k): value for k in spec}


def main():
  out = []
  with tf.Graph().as_default():
    for case in CASES:
      output = tf.estimator.export.EvalOutput(
          loss=_arg(case["loss"]), predictions=_arg(case["predictions"]),
          metrics=_arg(case["metrics"], pair=True))
      out.append({**case, "keys": {
          name: None if getattr(output, name) is None else
          sorted(getattr(output, name))
          for name in ("loss", "predictions", "metrics")}})
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "eval_output_tf215.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"tensorflow": tf.__version__, "cases": out}, f, indent=1)
    f.write("\n")


if __name__ == "__main__":
  main()
