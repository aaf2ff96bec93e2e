"""Import time of estlab, each in a fresh interpreter; one JSON line.

``import estlab`` is lazy (jax loads on first use of an engine name), so the
time that matters to a user is also measured with ``estlab.Estimator`` and
``estlab.DNNClassifier`` touched. Interpreter start-up is not counted: the
child times only the statement.

Usage:
  python bench/import_time.py [--repeats N] [--python PATH]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

STATEMENTS = {
    "import_s": "import estlab",
    "import_with_estimator_s": "import estlab; estlab.Estimator",
    "import_with_dnn_classifier_s": "import estlab; estlab.DNNClassifier",
}
_TIMER = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"


def time_import(statement: str, python: str = sys.executable) -> float:
  """Seconds ``statement`` takes in a fresh ``python`` process."""
  out = subprocess.run([python, "-c", _TIMER.format(statement)],
                       capture_output=True, text=True, check=True, timeout=300)
  return float(out.stdout.strip().splitlines()[-1])


def measure(repeats: int = 5, python: str = sys.executable) -> dict:
  """``{key: {'median': s, 'min': s}}`` for each of ``STATEMENTS``."""
  result = {}
  for key, statement in STATEMENTS.items():
    times = [time_import(statement, python) for _ in range(repeats)]
    result[key] = {"median": round(statistics.median(times), 3),
                   "min": round(min(times), 3)}
  return result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--python", default=sys.executable)
  args = parser.parse_args()
  print(json.dumps({"bench": "import_time", "repeats": args.repeats,
                    **measure(args.repeats, args.python)}), flush=True)


if __name__ == "__main__":
  main()
