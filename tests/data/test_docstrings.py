"""The examples in estlab.data's docstrings run and print what they say."""
import doctest
import importlib

import pytest

_MODULES = ["estlab.data", "estlab.data._dataset", "estlab.data._structure",
            "estlab.data._shuffle", "estlab.data._batching",
            "estlab.data._csv", "estlab.data._csv_lines",
            "estlab.data._errors", "estlab.data._input_fn",
            "estlab.data._replicas", "estlab.data._packing",
            "estlab.data._grouping"]


@pytest.mark.parametrize("name", _MODULES)
def test_docstring_examples(name):
  module = importlib.import_module(name)
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0, f"{name} has no example"
  assert result.failed == 0
