"""The test suite's own layout: what pytest needs to collect every file.

tests/ has no ``__init__.py`` (pytest's default "prepend" import mode), so
each test module is imported by its basename: two files with one basename in
different folders stop the whole run at collection ("import file mismatch"),
as tests/data/test_batching.py and tests/export/test_batching.py once did.
"""
import collections
import pathlib

_TESTS = pathlib.Path(__file__).resolve().parent


def test_every_test_module_basename_is_unique():
  by_name = collections.defaultdict(list)
  for path in _TESTS.rglob("*.py"):
    if ".venv" not in path.parts:
      by_name[path.name].append(str(path.relative_to(_TESTS)))
  clashes = {name: sorted(paths) for name, paths in by_name.items()
             if len(paths) > 1 and name != "conftest.py"}
  assert not clashes, (
      f"test modules sharing a basename: {clashes}; rename one (e.g. "
      "tests/export/test_serving_batching.py beside tests/data/"
      "test_batching.py).")
