"""Lists TF 2.15's public tf.estimator names, for tests/test_public_names.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/make_public_names.py
writes tf215_public_names.json next to this file: ``{"tensorflow": version,
"modules": {module path: [name, ...]}, "submodules": {module path: [name,
...]}, "count": N}``. A module's names are ``dir(module)`` without those
starting with ``_`` and without submodules (``tf.estimator.export`` and
``tf.estimator.experimental`` are modules of ``tf.estimator``: they are listed
under ``submodules`` and their own names under ``modules``).

TF 2.15.1 (tensorflow-cpu, tensorflow-estimator 2.15.0) gives 93 names: 53 in
tf.estimator, 9 in tf.estimator.export, 12 in tf.estimator.experimental, 17 in
tf.feature_column and 2 in tf.compat.v1.estimator.inputs (issue #21's "95"
counted the two submodules ``export`` and ``experimental`` as names too).
"""
import json
import os
import types

import tensorflow as tf

MODULES = {
    "tf.estimator": tf.estimator,
    "tf.estimator.export": tf.estimator.export,
    "tf.estimator.experimental": tf.estimator.experimental,
    "tf.feature_column": tf.feature_column,
    "tf.compat.v1.estimator.inputs": tf.compat.v1.estimator.inputs,
}


def public_names(module):
  """``(names, submodules)``: the public non-module names, and the modules."""
  names = [n for n in dir(module) if not n.startswith("_")]
  subs = [n for n in names if isinstance(getattr(module, n), types.ModuleType)]
  return sorted(set(names) - set(subs)), sorted(subs)


def main():
  modules, submodules = {}, {}
  for path, module in MODULES.items():
    modules[path], subs = public_names(module)
    if subs:
      submodules[path] = subs
  out = {"tensorflow": tf.__version__, "modules": modules,
         "submodules": submodules,
         "count": sum(len(v) for v in modules.values())}
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "tf215_public_names.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
  print(f"{out['count']} names -> {path}")


if __name__ == "__main__":
  main()
