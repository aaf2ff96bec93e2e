"""``Dataset``: tf.data's Dataset names and semantics over numpy, on Grain."""
from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

import numpy as np

from estlab.data import (_batching, _plan, _sources, _structure, _text,
                         _transforms)
from estlab.data._node import INFINITE, UNKNOWN, Node

__all__ = ["Dataset", "TextLineDataset", "AUTOTUNE"]

AUTOTUNE = -1  # tf.data.AUTOTUNE: prefetch picks its buffer (2 elements).

# tf.data.Dataset methods not provided here, for a clear AttributeError.
_NOT_PROVIDED = frozenset((
    "padded_batch", "flat_map", "interleave", "window", "reduce", "scan",
    "enumerate", "take_while", "unique", "group_by_window", "bucket_by_"
    "sequence_length", "rejection_resample", "ragged_batch", "sparse_batch",
    "snapshot", "save", "load", "load", "list_files", "choose_from_datasets",
    "sample_from_datasets", "random", "counter", "with_options", "options",
    "get_single_element", "ignore_errors", "rebatch", "batch_dataset",
    "from_tensor_slices_dataset", "distribute"))


class _Cardinality(int):
  """An int that also answers ``.numpy()``, as TF's cardinality tensor."""

  def numpy(self) -> np.int64:
    return np.int64(self)


class Dataset:
  """A tf.data ``Dataset`` of numpy elements: same names, same semantics.

  Elements are structures (dicts, tuples, namedtuples) of numpy arrays, as
  ``tf.data``'s ``as_numpy_iterator`` gives them, except that text is an
  object array of ``str`` (TF yields ``bytes``). Functions given to
  ``map`` and ``filter`` are Python functions on numpy values (``tf.*``
  ops become ``np.*``); after ``batch`` they see whole batches, and a tuple
  element is unpacked into their arguments, as in TF.

  Elements are produced by Grain (``MapDataset`` while access is random,
  ``IterDataset`` from a generator, ``filter`` or a buffer ``shuffle`` on);
  steps Grain lacks are written in ``_grain_ops``. A dataset that slices
  in-memory arrays and then only shuffles, repeats, batches, takes, skips,
  shards, caches or prefetches is planned as index batches over the arrays
  instead: an Estimator then encodes the columns once and gathers rows, as
  for ``pandas_input_fn``.

  Example:
    >>> import numpy as np
    >>> ds = Dataset.from_tensor_slices(({'x': np.arange(5.0)}, np.arange(5)))
    >>> [y.tolist() for _, y in ds.shuffle(5, seed=0).batch(2)]
    [[0, 3], [2, 1], [4]]
  """

  def __init__(self, node: Node):
    """Wraps a node; build datasets with the ``from_*`` methods instead."""
    if not isinstance(node, Node):
      raise TypeError(
          f"Dataset(...) takes no data; got {node!r:.100}. Use "
          f"Dataset.from_tensor_slices(...), from_tensors(...), "
          f"from_generator(...) or range(...).")
    self._node = node

  # -- sources ---------------------------------------------------------------

  @staticmethod
  def from_tensor_slices(tensors: Any, name: Optional[str] = None
                         ) -> "Dataset":
    """Elements that are the rows (first-axis slices) of ``tensors``.

    Args:
      tensors: an array, a list (converted to one array), or a dict or
        tuple of them, e.g. ``(dict(df), labels)``; every array needs the
        same first dimension. Python ints become int32 and floats float32,
        as in TF; pandas Series give their values.
      name: unused (TF names its ops).

    Raises:
      ValueError: for a scalar, or arrays of different lengths.
    """
    del name
    return Dataset(_sources.Slices(tensors))

  @staticmethod
  def from_tensors(tensors: Any, name: Optional[str] = None) -> "Dataset":
    """One element: ``tensors`` as a whole."""
    del name
    return Dataset(_sources.Tensors(tensors))

  @staticmethod
  def from_generator(generator: Callable, output_types: Any = None,
                     output_shapes: Any = None, args: Any = None,
                     output_signature: Any = None,
                     name: Optional[str] = None) -> "Dataset":
    """Elements yielded by ``generator(*args)``, called on each iteration.

    Each element is converted to the dtypes of ``output_signature`` (a
    structure of ``TensorSpec``), or of ``output_types`` (with
    ``output_shapes``, else any shape), and checked against its shapes.

    Raises:
      TypeError: without a signature or types, or when an element does not
        fit them (on iteration).
    """
    del name
    if not callable(generator):
      raise TypeError(
          f"from_generator takes a callable that returns an iterator (the "
          f"generator function, not its result); got {generator!r:.100}. "
          f"Pass e.g. lambda: my_generator().")
    spec = _sources.signature(output_signature, output_types, output_shapes)
    call_args = tuple(args) if args is not None else ()
    label = getattr(generator, "__name__", type(generator).__name__)
    return Dataset(_sources.Generator(lambda: iter(generator(*call_args)),
                                      spec, f"from_generator({label})"))

  @staticmethod
  def range(*args: int, output_type: Any = np.int64,
            name: Optional[str] = None) -> "Dataset":
    """``range(stop)``, ``range(start, stop[, step])`` as int64 scalars."""
    del name
    return Dataset(_sources.Range(args, output_type))

  @staticmethod
  def zip(*args: Any, datasets: Any = None, name: Optional[str] = None
          ) -> "Dataset":
    """Elements of several datasets side by side, up to the shortest.

    ``zip((a, b))``, ``zip(a, b)`` and ``zip({'x': a, 'y': b})`` give
    elements ``(ea, eb)`` or ``{'x': ea, 'y': eb}``.
    """
    del name
    if datasets is not None and args:
      raise TypeError("Pass the datasets to zip either positionally or as "
                      "datasets=, not both.")
    structure = datasets if datasets is not None else (
        args[0] if len(args) == 1 else tuple(args))
    if isinstance(structure, Dataset):
      structure = (structure,)
    nodes = _structure.map_structure(_node_of, structure)
    if not _structure.flatten(nodes)[0]:
      raise ValueError("zip needs at least one dataset; pass e.g. "
                       "Dataset.zip((features, labels)).")
    return Dataset(_sources.Zip(nodes))

  # -- transformations ---------------------------------------------------------

  def concatenate(self, dataset: "Dataset", name: Optional[str] = None
                  ) -> "Dataset":
    """This dataset's elements, then ``dataset``'s (same structure)."""
    del name
    return Dataset(_sources.Concatenate(self._node, _node_of(dataset)))

  def map(self, map_func: Callable, num_parallel_calls: Any = None,
          deterministic: Any = None, name: Optional[str] = None) -> "Dataset":
    """``map_func`` of each element (a numpy function).

    A tuple element is unpacked into arguments (``lambda x, y: ...``).
    Elements are mapped in order in the reading thread:
    ``num_parallel_calls`` and ``deterministic`` are accepted and unused.
    """
    del num_parallel_calls, deterministic, name
    return Dataset(_transforms.Map(self._node, map_func))

  def filter(self, predicate: Callable, name: Optional[str] = None
             ) -> "Dataset":
    """The elements for which ``predicate`` returns True."""
    del name
    return Dataset(_transforms.Filter(self._node, predicate))

  def shuffle(self, buffer_size: int, seed: Any = None,
              reshuffle_each_iteration: bool = True,
              name: Optional[str] = None) -> "Dataset":
    """tf.data's buffer shuffle: each element is drawn at random from a
    buffer of the next ``buffer_size`` elements (not Grain's global
    shuffle). Each iteration (each epoch of a later ``repeat``) reshuffles,
    reproducibly given ``seed``, unless ``reshuffle_each_iteration`` is
    False. The order differs from TF's for the same seed."""
    del name
    return Dataset(_transforms.Shuffle(self._node, buffer_size, seed,
                                       reshuffle_each_iteration))

  def repeat(self, count: Optional[int] = None, name: Optional[str] = None
             ) -> "Dataset":
    """``count`` passes over the elements; None or -1 repeats forever."""
    del name
    return Dataset(_transforms.Repeat(self._node, count))

  def batch(self, batch_size: int, drop_remainder: bool = False,
            num_parallel_calls: Any = None, deterministic: Any = None,
            name: Optional[str] = None) -> "Dataset":
    """Consecutive elements stacked on a new first axis (dicts stay dicts,
    tuples tuples); the last batch is short unless ``drop_remainder``."""
    del num_parallel_calls, deterministic, name
    return Dataset(_transforms.Batch(self._node, batch_size, drop_remainder))

  def unbatch(self, name: Optional[str] = None) -> "Dataset":
    """The rows of each element as elements (the inverse of ``batch``).
    Grain has no counterpart; written in ``_grain_ops``."""
    del name
    return Dataset(_transforms.Unbatch((self._node,)))

  def take(self, count: int, name: Optional[str] = None) -> "Dataset":
    """The first ``count`` elements (-1: all)."""
    del name
    return Dataset(_transforms.Take(self._node, count))

  def skip(self, count: int, name: Optional[str] = None) -> "Dataset":
    """All but the first ``count`` elements (-1: none)."""
    del name
    return Dataset(_transforms.Skip(self._node, count))

  def shard(self, num_shards: int, index: int, name: Optional[str] = None
            ) -> "Dataset":
    """Every ``num_shards``-th element from ``index`` on, e.g.
    ``shard(input_context.num_input_pipelines,
    input_context.input_pipeline_id)`` in a multi-worker input_fn."""
    del name
    return Dataset(_transforms.Shard(self._node, num_shards, index))

  def cache(self, filename: str = "", name: Optional[str] = None
            ) -> "Dataset":
    """The elements of the first complete pass, replayed by later ones.

    In memory, or pickled to ``filename``. Grain's ``CacheIterDataset``
    caches within one iterator; tf.data's cache lives with the dataset,
    so it is written in ``_grain_ops``.
    """
    del name
    return Dataset(_transforms.Cache(self._node, filename))

  def prefetch(self, buffer_size: int, name: Optional[str] = None
               ) -> "Dataset":
    """Prepares ``buffer_size`` elements ahead in a thread (``AUTOTUNE``:
    2); an Estimator's input is prefetched by the engine instead."""
    del name
    return Dataset(_transforms.Prefetch(self._node, buffer_size))

  def apply(self, transformation_func: Callable[["Dataset"], "Dataset"]
            ) -> "Dataset":
    """``transformation_func(self)``."""
    return transformation_func(self)

  # -- reading ---------------------------------------------------------------

  def __iter__(self) -> Iterator[Any]:
    """A new iteration over the elements."""
    return iter(self._iterable(planned=True))

  def as_numpy_iterator(self) -> Iterator[Any]:
    """A new iteration over the elements (already numpy)."""
    return iter(self)

  def _iterable(self, planned: bool) -> Any:
    """The Grain ``IterDataset`` of the elements; ``planned=False`` reads
    in-memory columns element by element too (tests compare the paths)."""
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    return _grain_ops.as_iter(self._node.grain(planned))

  def _input_source(self) -> Any:
    """What an Estimator reads: ``ArrayBatches`` (a table of the columns,
    the same object on every call, and the rows of each batch) when the
    dataset is planned as batches over a table of features (and labels);
    else an iterator of batches (gathered rows, or the element path)."""
    plan = self._node.plan()
    if plan is None or not plan.batched:
      return iter(self)
    selections = plan.stream()
    table = plan.source.table()
    if table is not None:
      # The selections keep the table alive for as long as they are read:
      # an Estimator holds the table itself only weakly.
      if isinstance(selections, _plan.Selections):
        selections.owner = table
      else:
        selections = _owned(selections, table)
      return _batching.ArrayBatches(table, selections)
    columns = plan.source.columns
    return (_structure.gather(columns, rows) for rows in selections)

  @property
  def element_spec(self) -> Any:
    """The structure of ``TensorSpec(shape, dtype)`` of an element; None
    marks an unknown dimension. After a ``map`` it is found by running the
    function on the first element."""
    return self._node.spec

  def cardinality(self) -> int:
    """Elements, or ``INFINITE_CARDINALITY`` (-1) / ``UNKNOWN_CARDINALITY``
    (-2); ``.numpy()`` works on it as on TF's."""
    return _Cardinality(self._node.cardinality())

  def __len__(self) -> int:
    n = self._node.cardinality()
    if n == INFINITE:
      raise TypeError("The dataset is infinite (as TF says): len() needs a finite "
                      "one; bound it with .take(n), or read .cardinality().")
    if n == UNKNOWN:
      raise TypeError("The dataset length is unknown (as TF says: a filter or a "
                      "generator decides it); iterate to count, or read "
                      ".cardinality() (UNKNOWN_CARDINALITY, -2).")
    return n

  def __bool__(self) -> bool:
    return True  # not len(): an infinite dataset is still a dataset

  def __repr__(self) -> str:
    return f"<Dataset {self._node.describe()}>"

  def __getattr__(self, name: str) -> Any:
    if name in _NOT_PROVIDED:
      raise AttributeError(
          f"estlab.data.Dataset has no {name!r} (tf.data's {name} is not "
          f"provided). It has from_tensor_slices, from_tensors, "
          f"from_generator, range, zip, concatenate, map, filter, shuffle, "
          f"repeat, batch, unbatch, take, skip, shard, cache, prefetch, "
          f"apply, as_numpy_iterator, element_spec and cardinality.")
    raise AttributeError(f"'Dataset' object has no attribute {name!r}")


class TextLineDataset(Dataset):
  """tf.data's ``TextLineDataset``: the lines of text files, as ``str``.

  Each element is one line without its newline (TF yields ``bytes``; here
  ``str``, decoded as UTF-8). Every ``\\r`` is dropped, so CRLF files read
  as LF ones; empty lines are elements; a last line without a newline is
  one. The files are read one after the other, or, with
  ``num_parallel_reads=n``, interleaved one line from each of ``n`` open
  files in turn, in TF's order (read in the consumer's thread: Python
  gains nothing from reader threads here). Each pass reads the files
  afresh; the cardinality is unknown, as in TF.

  Args:
    filenames: a file name, a list (or array) of them, or a Dataset of
      file names. Named files must exist.
    compression_type: None or '' (plain text), 'GZIP' or 'ZLIB'.
    buffer_size: bytes read at a time (default 256 KiB).
    num_parallel_reads: files read at once, interleaved; None reads them in
      order; ``AUTOTUNE`` opens one per CPU core, as TF.
    name: unused (TF names its ops).

  Raises:
    FileNotFoundError: naming a file that does not exist.
    ValueError: for another compression_type (and, on iteration, for a
      file that is not UTF-8 or not of that compression).
    TypeError: for file names that are not strings.

  Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), 'iris.csv')
    >>> _ = open(path, 'w').write('a,b\\n1,2\\n3,4')
    >>> list(TextLineDataset(path).skip(1))
    ['1,2', '3,4']
  """

  def __init__(self, filenames: Any, compression_type: Optional[str] = None,
               buffer_size: Optional[int] = None,
               num_parallel_reads: Optional[int] = None,
               name: Optional[str] = None):
    del name
    if isinstance(filenames, Dataset):
      filenames = filenames._node  # pylint: disable=protected-access
    super().__init__(_text.TextLines(filenames, compression_type,
                                     buffer_size, num_parallel_reads))


def _owned(iterator: Iterator[Any], owner: Any) -> Iterator[Any]:
  """``iterator``'s items; ``owner`` lives as long as the generator."""
  yield from iterator
  del owner  # held by this generator's frame until here


def _node_of(value: Any) -> Node:
  if not isinstance(value, Dataset):
    raise TypeError(f"Expected an estlab.data.Dataset; got {value!r:.100}.")
  return value._node  # pylint: disable=protected-access
