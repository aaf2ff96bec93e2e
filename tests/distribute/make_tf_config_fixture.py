"""Writes tf_config_fixture.json: what TF 2.15 makes of a set of TF_CONFIGs.

Run with the TF reference environment (never imported by the tests):

  /work/tf215/bin/python tests/distribute/make_tf_config_fixture.py

``valid``: ``tf.estimator.RunConfig``'s cluster properties for clusters with
a chief (TF's RunConfig without a strategy requires one) and, for clusters
of workers only, what TF's MultiWorkerMirroredStrategy path decides
(``multi_worker_util.is_chief``, ``estimator_training._get_global_id`` and
``_count_worker``). ``invalid``: TF_CONFIGs TF rejects, and the TF function
that rejects each (RunConfig, or multi_worker_util._validate_cluster_spec,
which MultiWorkerMirroredStrategy runs).
"""
import json
import os

import tensorflow as tf
from tensorflow.python.distribute import estimator_training
from tensorflow.python.distribute import multi_worker_util

_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "tf_config_fixture.json")

_CLUSTER = {"chief": ["h0:2222"], "worker": ["h1:2222", "h2:2222"],
            "evaluator": ["h3:2222"]}
_NO_EVAL = {"chief": ["h0:2222"], "worker": ["h1:2222", "h2:2222"]}
_WORKERS = {"worker": ["h1:2222", "h2:2222"], "evaluator": ["h3:2222"]}

_VALID_WITH_CHIEF = [
    {},
    {"cluster": _CLUSTER, "task": {"type": "chief", "index": 0}},
    {"cluster": _CLUSTER, "task": {"type": "worker", "index": 0}},
    {"cluster": _CLUSTER, "task": {"type": "worker", "index": 1}},
    {"cluster": _CLUSTER, "task": {"type": "evaluator", "index": 0}},
    {"cluster": _NO_EVAL, "task": {"type": "worker", "index": "1"}},
    {"cluster": _NO_EVAL, "task": {"type": "evaluator", "index": 0}},
    {"cluster": {"chief": ["h0:2222"]}, "task": {"type": "chief", "index": 0}},
    {"cluster": _CLUSTER, "task": {"type": "worker", "index": 1},
     "session_master": "grpc://elsewhere:1"},
    {"cluster": _CLUSTER, "task": {"type": "evaluator", "index": 0},
     "eval_session_master": "grpc://eval:1"},
]
_VALID_WORKERS_ONLY = [
    {"cluster": _WORKERS, "task": {"type": "worker", "index": 0}},
    {"cluster": _WORKERS, "task": {"type": "worker", "index": 1}},
]
_INVALID = [
    "{not json",
    {"cluster": _CLUSTER, "task": {"type": "trainer", "index": 0}},
    {"cluster": _CLUSTER, "task": {"type": "worker", "index": 2}},
    {"cluster": _CLUSTER, "task": {"type": "worker", "index": -1}},
    {"cluster": _CLUSTER, "task": {"type": "worker"}},
    {"cluster": _CLUSTER, "task": {"index": 0}},
    {"cluster": {**_CLUSTER, "chief": ["h0:1", "h9:1"]},
     "task": {"type": "chief", "index": 0}},
    {"cluster": {**_CLUSTER, "evaluator": ["h3:1", "h4:1"]},
     "task": {"type": "worker", "index": 0}},
    {"cluster": {**_CLUSTER, "trainer": ["h5:1"]},
     "task": {"type": "worker", "index": 0}},
    {"cluster": {"evaluator": ["h3:1"]}, "task": {"type": "evaluator",
                                                  "index": 0}},
    {"task": {"type": "chief", "index": 0}},
    {"task": {"type": "worker", "index": 1}},
]


def _run_config(tf_config):
  os.environ["TF_CONFIG"] = (tf_config if isinstance(tf_config, str)
                             else json.dumps(tf_config))
  return tf.estimator.RunConfig()


def _properties(config):
  return {"cluster_spec": config.cluster_spec.as_dict(),
          "task_type": config.task_type, "task_id": config.task_id,
          "is_chief": config.is_chief,
          "num_worker_replicas": config.num_worker_replicas,
          "num_ps_replicas": config.num_ps_replicas,
          "global_id_in_cluster": config.global_id_in_cluster,
          "master": config.master,
          "evaluation_master": config.evaluation_master}


def _workers_only(tf_config):
  spec = tf.train.ClusterSpec(tf_config["cluster"])
  kind, index = tf_config["task"]["type"], tf_config["task"]["index"]
  return {"is_chief": multi_worker_util.is_chief(tf_config["cluster"], kind,
                                                 index),
          "global_id_in_cluster": estimator_training._get_global_id(  # pylint: disable=protected-access
              spec, kind, index, "chief"),
          "num_worker_replicas": estimator_training._count_worker(  # pylint: disable=protected-access
              spec, "chief")}


def _rejected_by(tf_config):
  """Which TF check rejects ``tf_config`` (None: TF accepts it)."""
  try:
    _run_config(tf_config)
  except ValueError as e:
    return "RunConfig", str(e)
  value = json.loads(tf_config)
  task = value.get("task", {})
  try:
    multi_worker_util._validate_cluster_spec(  # pylint: disable=protected-access
        value.get("cluster", {}), task.get("type"), task.get("index", 0))
  except ValueError as e:
    return "multi_worker_util._validate_cluster_spec", str(e)
  return None, None


def main():
  valid = [{"tf_config": c, "tf": _properties(_run_config(c))}
           for c in _VALID_WITH_CHIEF]
  valid += [{"tf_config": c, "tf": _workers_only(c)}
            for c in _VALID_WORKERS_ONLY]
  invalid = []
  for c in _INVALID:
    text = c if isinstance(c, str) else json.dumps(c)
    by, message = _rejected_by(text)
    assert by is not None, f"TF accepts {text}"
    invalid.append({"tf_config": text, "rejected_by": by, "message": message})
  with open(_OUT, "w") as f:
    json.dump({"tensorflow": tf.__version__, "valid": valid,
               "invalid": invalid}, f, indent=1, sort_keys=True)
    f.write("\n")


if __name__ == "__main__":
  main()
