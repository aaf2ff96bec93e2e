"""Run by test_roundtrip in a fresh interpreter: load exports, predict, report.

``python _load_in_fresh_process.py job.json``; the job is ``{name: {path,
request, batches}}`` (and, for an export with an ``eval`` signature, an
optional ``eval_request``: its outputs are reported under ``eval``). Unpickling is disabled before anything is imported.
Prints one JSON line: the results per export and batch size, the signature
method names, the linear classifier's ``classification`` answer, the heavy
or model modules that got imported (there must be none), and whether
anything was unpickled.
"""
import json
import pickle
import sys

_UNPICKLED = []


def _refuse(*args, **kwargs):
  del args, kwargs
  _UNPICKLED.append(True)
  raise AssertionError("the loader must never unpickle")


pickle.load = pickle.loads = _refuse
pickle.Unpickler = _refuse

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

import estlab.export  # pylint: disable=g-import-not-at-top,wrong-import-position

_FORBIDDEN = ("estlab.estimator", "estlab.premade", "estlab.heads",
              "estlab._engine.steps", "flax", "optax")


def _json(outputs):
  return {k: np.asarray(v).tolist() for k, v in outputs.items()}


def main(job_file):
  with open(job_file, encoding="utf-8") as f:
    job = json.load(f)
  report = {"results": {}, "signatures": {}}
  for name, case in job.items():
    imported = estlab.export.load(case["path"])
    report["signatures"][name] = {
        k: s.method_name for k, s in imported.signatures.items()}
    report["results"][name] = {}
    for batch in case["batches"]:
      request = {k: v[:batch] for k, v in case["request"].items()}
      report["results"][name][str(batch)] = _json(
          imported.signatures["predict"](request))
    if "eval_request" in case:
      report.setdefault("eval", {})[name] = _json(
          imported.signatures["eval"](case["eval_request"]))
    if name == "linear_classifier":
      report["classification"] = _json(
          imported.signatures["classification"](case["request"]))
  report["forbidden_modules"] = sorted(
      m for m in sys.modules if m.startswith(_FORBIDDEN))
  report["unpickled"] = bool(_UNPICKLED)
  print(json.dumps(report))


if __name__ == "__main__":
  main(sys.argv[1])
