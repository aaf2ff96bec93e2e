"""``tf.data.experimental``'s names: ``make_csv_dataset``, ``AUTOTUNE``,
the cardinality constants and ``cardinality``; and ``CsvParseError``, what
``make_csv_dataset`` raises for a bad file (TF's ``InvalidArgumentError``)."""
from typing import Any

from estlab.data._csv import make_csv_dataset
from estlab.data._dataset import AUTOTUNE
from estlab.data._errors import CsvParseError
from estlab.data._node import INFINITE as INFINITE_CARDINALITY
from estlab.data._node import UNKNOWN as UNKNOWN_CARDINALITY

__all__ = ["make_csv_dataset", "AUTOTUNE", "INFINITE_CARDINALITY",
           "UNKNOWN_CARDINALITY", "cardinality", "CsvParseError"]


def cardinality(dataset: Any) -> int:
  """``dataset.cardinality()`` (``tf.data.experimental.cardinality``)."""
  return dataset.cardinality()
