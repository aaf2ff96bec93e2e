"""``FeatureColumnBuilder``: propose, edit and export feature columns for a DataFrame.

One row per DataFrame column shows its dtype, missing share, distinct count,
sample values and a small chart, and proposes a column kind from the data;
ordinary ipywidgets controls (reachable as attributes, e.g.
``builder.rows['island'].kind``) change each choice. The builder turns the
current choices into estlab feature columns, Python source, an input_fn, a
head and a premade estimator. Imported only by users: the core never imports
``estlab.widgets``.

Example:
  >>> import pandas as pd
  >>> df = pd.DataFrame({'x': [1.5, 2.5, None, 4.0], 'c': ['a', 'b', 'a', None],
  ...                    'y': [0, 1, 0, 1]})
  >>> b = FeatureColumnBuilder(df, label='y')
  >>> b.rows['x'].kind.value, b.rows['c'].kind.value, b.label_kind
  ('numeric', 'vocabulary', 'binary')
  >>> b.rows['c'].kind.value = 'hash'
  >>> b.rows['c'].wrap.value = 'embedding'
  >>> [c.name for c in b.feature_columns]
  ['x', 'c_embedding']
"""
from __future__ import annotations

import html
import io
import math
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd

from estlab import feature_column as fc
from estlab.inputs import pandas_input_fn

__all__ = ["FeatureColumnBuilder", "KINDS", "LABEL_KINDS"]

KINDS = ("numeric", "bucketized", "vocabulary", "hash", "skip")
LABEL_KINDS = ("binary", "multi_class", "regression")
_WRAPS = ("indicator", "embedding")
_MAX_VOCABULARY = 50      # more distinct strings than this: hash buckets
_MAX_INT_CATEGORIES = 10  # integers with at most this many values: vocabulary
_MAX_INT_CLASSES = 20     # integer labels with more values: regression
_PLOT_SIZE = (2.4, 1.1)   # inches; the PNG is about 170 x 80 pixels


def _is_text(series: pd.Series) -> bool:
  return (pd.api.types.is_string_dtype(series.dtype)
          or series.dtype == object
          or isinstance(series.dtype, pd.CategoricalDtype))


def _is_integer(series: pd.Series) -> bool:
  if pd.api.types.is_bool_dtype(series.dtype):
    return False
  if pd.api.types.is_integer_dtype(series.dtype):
    return True
  values = series.dropna()
  return (pd.api.types.is_float_dtype(series.dtype) and len(values) > 0
          and bool((values == np.round(values)).all()))


def _stats(series: pd.Series) -> dict:
  present = series.dropna()
  return {"dtype": str(series.dtype),
          "missing": int(series.isna().sum()),
          "missing_pct": 100.0 * float(series.isna().mean()) if len(series) else 0.0,
          "distinct": int(series.nunique(dropna=True)),
          "samples": pd.unique(present)[:4].tolist()}


def _propose(series: pd.Series, stats: dict) -> str:
  """The proposed kind of one feature column (the label is handled apart)."""
  n = stats["distinct"]
  rows = len(series) - stats["missing"]
  if n <= 1 or pd.api.types.is_datetime64_any_dtype(series.dtype):
    return "skip"
  if pd.api.types.is_bool_dtype(series.dtype):
    return "numeric"
  if _is_text(series) or _is_integer(series):
    if n == rows and rows > _MAX_INT_CATEGORIES:  # all-unique: an id
      return "skip"
    if _is_text(series):
      return "vocabulary" if n <= _MAX_VOCABULARY else "hash"
    return "vocabulary" if n <= _MAX_INT_CATEGORIES else "numeric"
  if pd.api.types.is_numeric_dtype(series.dtype):
    return "numeric"
  return "skip"


def _chart(series: pd.Series) -> bytes:
  """A small histogram (numbers) or bar chart (top categories) as PNG bytes."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  figure = Figure(figsize=_PLOT_SIZE, dpi=72)
  axes = figure.add_axes((0.02, 0.18, 0.96, 0.8))
  present = series.dropna()
  if (pd.api.types.is_numeric_dtype(series.dtype)
      and not pd.api.types.is_bool_dtype(series.dtype)
      and present.nunique() > _MAX_INT_CATEGORIES):
    axes.hist(present.to_numpy(dtype=float), bins=20, color="#4c72b0")
  else:
    counts = present.astype(str).value_counts().head(8)
    axes.bar(range(len(counts)), counts.to_numpy(), color="#dd8452")
    axes.set_xticks(range(len(counts)), [s[:8] for s in counts.index],
                    fontsize=6)
  axes.set_yticks([])
  axes.tick_params(axis="x", labelsize=6)
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png")
  return buffer.getvalue()


def _quantile_boundaries(values: np.ndarray, buckets: int) -> list:
  qs = np.linspace(0.0, 1.0, max(int(buckets), 2) + 1)[1:-1]
  bounds = sorted({float(b) for b in np.nanquantile(values, qs)})
  return bounds or [float(np.nanmedian(values))]


class _ColumnRow:
  """The controls and statistics of one DataFrame column.

  Attributes (ipywidgets; set ``.value``): ``kind`` (Dropdown of ``KINDS``),
  ``default`` (FloatText, the value for missing numbers; the median),
  ``normalize`` (Checkbox, z-score on the device), ``buckets`` (IntText,
  quantile buckets), ``hash_size`` (IntText), ``wrap`` (Dropdown,
  ``'indicator'`` or ``'embedding'`` over a categorical column),
  ``dimension`` (IntText, embedding width). ``stats`` is a dict with
  ``dtype, missing, missing_pct, distinct, samples``.
  """

  def __init__(self, name: str, series: pd.Series, is_label: bool):
    self.name = name
    self.series = series
    self.stats = _stats(series)
    proposed = "skip" if is_label else _propose(series, self.stats)
    self.proposed = proposed
    numeric = (pd.api.types.is_numeric_dtype(series.dtype)
               and not isinstance(series.dtype, pd.CategoricalDtype))
    self._numbers = (series.to_numpy(dtype=float, na_value=np.nan)
                     if numeric else None)
    if self._numbers is not None and np.isfinite(self._numbers).any():
      finite = self._numbers[np.isfinite(self._numbers)]
      median = float(np.median(finite))
      self._mean, self._std = float(finite.mean()), float(finite.std()) or 1.0
    else:
      median, self._mean, self._std = 0.0, 0.0, 1.0
    options = list(KINDS) if numeric else ["vocabulary", "hash", "skip"]
    if proposed not in options:
      options.append(proposed)
    n = self.stats["distinct"]
    hash_size = 2 ** max(6, math.ceil(math.log2(max(2 * n, 2))))
    self.kind = W.Dropdown(options=options, value=proposed, description="kind",
                           layout=W.Layout(width="190px"), disabled=is_label)
    self.default = W.FloatText(value=round(median, 6), description="missing →",
                               layout=W.Layout(width="190px"))
    self.normalize = W.Checkbox(value=not pd.api.types.is_bool_dtype(series.dtype),
                                description="normalize", indent=False)
    self.buckets = W.IntText(value=4, description="buckets",
                             layout=W.Layout(width="160px"))
    self.hash_size = W.IntText(value=min(hash_size, 2 ** 20),
                               description="hash size",
                               layout=W.Layout(width="190px"))
    self.wrap = W.Dropdown(options=_WRAPS,
                           value="embedding" if proposed == "hash" else "indicator",
                           description="as", layout=W.Layout(width="190px"))
    self.dimension = W.IntText(value=max(2, round(6 * n ** 0.25)),
                               description="dimension",
                               layout=W.Layout(width="160px"))
    self.kind.observe(lambda _: self._show(), names="value")
    self.wrap.observe(lambda _: self._show(), names="value")
    self._show()
    self.widget = W.HBox(
        [W.HTML(self._describe(is_label), layout=W.Layout(width="330px")),
         W.Image(value=_chart(series), format="png",
                 layout=W.Layout(width="170px")),
         W.VBox([self.kind, self.default, self.normalize, self.buckets,
                 self.hash_size, self.wrap, self.dimension])])

  @property
  def controls(self) -> list:
    return [self.kind, self.default, self.normalize, self.buckets,
            self.hash_size, self.wrap, self.dimension]

  def _describe(self, is_label: bool) -> str:
    s = self.stats
    samples = ", ".join(repr(v) for v in s["samples"])
    role = " <i>(label)</i>" if is_label else ""
    return (f"<b>{html.escape(str(self.name))}</b>{role}<br>"
            f"{html.escape(s['dtype'])} · {s['missing_pct']:.1f}% missing "
            f"({s['missing']}) · {s['distinct']} distinct<br>"
            f"<small>{html.escape(samples)}</small>")

  def _show(self) -> None:
    kind = self.kind.value
    categorical = kind in ("vocabulary", "hash", "bucketized")
    visible = {self.default: kind in ("numeric", "bucketized"),
               self.normalize: kind == "numeric",
               self.buckets: kind == "bucketized",
               self.hash_size: kind == "hash",
               self.wrap: categorical,
               self.dimension: categorical and self.wrap.value == "embedding"}
    for control, shown in visible.items():
      control.layout.display = None if shown else "none"

  def _vocabulary(self) -> list:
    present = self.series.dropna()
    if _is_text(self.series):
      return sorted({str(v) for v in present})
    return sorted({int(v) for v in present})

  def recipe(self) -> tuple[Any, str] | None:
    """``(column, source)`` for the current choices, or None when skipped."""
    kind, key = self.kind.value, self.name
    if kind == "skip":
      return None
    default = float(self.default.value)
    if kind == "numeric":
      if self.normalize.value:
        mean, std = self._mean, self._std
        column = fc.numeric_column(key, default_value=default,
                                   normalizer_fn=lambda x: (x - mean) / std)
        return column, (f"fc.numeric_column({key!r}, default_value={default!r}, "
                        f"normalizer_fn=lambda x: (x - {mean!r}) / {std!r})")
      return (fc.numeric_column(key, default_value=default),
              f"fc.numeric_column({key!r}, default_value={default!r})")
    if kind == "bucketized":
      bounds = _quantile_boundaries(self._numbers, self.buckets.value)
      column = fc.bucketized_column(
          fc.numeric_column(key, default_value=default), bounds)
      source = (f"fc.bucketized_column(fc.numeric_column({key!r}, "
                f"default_value={default!r}), {bounds!r})")
    elif kind == "vocabulary":
      vocabulary = self._vocabulary()
      column = fc.categorical_column_with_vocabulary_list(
          key, vocabulary, num_oov_buckets=1)
      source = (f"fc.categorical_column_with_vocabulary_list({key!r}, "
                f"{vocabulary!r}, num_oov_buckets=1)")
    else:
      size = int(self.hash_size.value)
      dtype = "string" if _is_text(self.series) else "int64"
      column = fc.categorical_column_with_hash_bucket(key, size, dtype=dtype)
      source = (f"fc.categorical_column_with_hash_bucket({key!r}, {size!r}, "
                f"dtype={dtype!r})")
    if self.wrap.value == "embedding":
      dimension = int(self.dimension.value)
      return (fc.embedding_column(column, dimension),
              f"fc.embedding_column({source}, {dimension!r})")
    return fc.indicator_column(column), f"fc.indicator_column({source})"


def _label_kind(series: pd.Series) -> str:
  present = series.dropna()
  n = present.nunique()
  if n == 2:
    return "binary"
  if _is_text(series) or pd.api.types.is_bool_dtype(series.dtype):
    return "multi_class"
  if _is_integer(series) and n <= _MAX_INT_CLASSES:
    return "multi_class"
  return "regression"


class FeatureColumnBuilder:
  """Proposes estlab feature columns for ``df`` and lets the user edit them.

  Args:
    df: the training DataFrame; the proposed columns train on it as it is
      (missing numbers get the median, unknown categories an OOV bucket).
    label: the label column's name, or None (no head, features only).

  Attributes:
    rows: ``{column name: row}``; each row's controls are attributes
      (``kind``, ``default``, ``normalize``, ``buckets``, ``hash_size``,
      ``wrap``, ``dimension``) and ``stats`` holds its statistics.
    label_kind_control: Dropdown of ``LABEL_KINDS`` (None without a label).
    widget: the whole UI, a VBox.

  Example:
    >>> import palmerpenguins
    >>> b = FeatureColumnBuilder(palmerpenguins.load_penguins(), label='species')
    >>> b.label_kind, b.label_vocabulary
    ('multi_class', ['Adelie', 'Chinstrap', 'Gentoo'])
    >>> model = b.estimator('linear')   # a LinearClassifier over b.feature_columns
  """

  def __init__(self, df: pd.DataFrame, label: str | None = None):
    if not isinstance(df, pd.DataFrame):
      raise TypeError(f"df must be a pandas DataFrame; got {type(df).__name__}: "
                      f"{df!r:.200}.")
    if label is not None and label not in df.columns:
      raise ValueError(f"label {label!r} is not a column of df; columns are "
                       f"{list(df.columns)!r}. Pass label=<one of them>.")
    if df.columns.has_duplicates:
      dup = df.columns[df.columns.duplicated()].tolist()
      raise ValueError(f"DataFrame columns must be unique; {dup!r} repeat.")
    self.df = df
    self.label = label
    self.rows = {name: _ColumnRow(name, df[name], name == label)
                 for name in df.columns}
    self.label_kind_control = None
    if label is not None:
      self.label_kind_control = W.Dropdown(
          options=LABEL_KINDS, value=_label_kind(df[label]),
          description="head", layout=W.Layout(width="220px"))
    self.code_view = W.HTML()
    self.preview_view = W.HTML()
    for row in self.rows.values():
      for control in row.controls:
        control.observe(self._refresh, names="value")
    if self.label_kind_control is not None:
      self.label_kind_control.observe(self._refresh, names="value")
    header = [W.HTML(f"<b>FeatureColumnBuilder</b>: {len(df)} rows, "
                     f"{len(df.columns)} columns"
                     + (f"; label <code>{html.escape(str(label))}</code>"
                        if label is not None else ""))]
    if self.label_kind_control is not None:
      header.append(self.label_kind_control)
    self.widget = W.VBox(
        [W.HBox(header)] + [row.widget for row in self.rows.values()]
        + [W.HTML("<b>Code</b>"), self.code_view,
           W.HTML("<b>Encoded preview</b>"), self.preview_view])
    self._refresh()

  # ---- columns and code ---------------------------------------------------

  def _recipes(self) -> list:
    recipes = [row.recipe() for name, row in self.rows.items()
               if name != self.label]
    return [r for r in recipes if r is not None]

  @property
  def feature_columns(self) -> list:
    """The estlab feature columns for the current choices."""
    return [column for column, _ in self._recipes()]

  @property
  def feature_keys(self) -> list:
    """The DataFrame columns the feature columns read."""
    return [name for name, row in self.rows.items()
            if name != self.label and row.kind.value != "skip"]

  def to_code(self) -> str:
    """Python source that rebuilds ``feature_columns`` (as ``feature_columns``).

    Example:
      >>> namespace = {}
      >>> exec(builder.to_code(), namespace)   # doctest: +SKIP
      >>> namespace['feature_columns']         # doctest: +SKIP
    """
    lines = ["from estlab import feature_column as fc", "",
             "feature_columns = ["]
    lines += [f"    {source}," for _, source in self._recipes()]
    lines.append("]")
    return "\n".join(lines) + "\n"

  # ---- label, head, estimator ---------------------------------------------

  def _need_label(self, what: str) -> None:
    if self.label is None:
      raise ValueError(f"{what} needs a label; pass FeatureColumnBuilder(df, "
                       "label='<column>').")

  @property
  def label_kind(self) -> str | None:
    """``'binary'``, ``'multi_class'`` or ``'regression'`` (None: no label)."""
    return None if self.label_kind_control is None else self.label_kind_control.value

  @property
  def label_vocabulary(self) -> list | None:
    """Class names (str) of a classification label; None for integer ids
    ``0..n-1`` (used as class ids) and for regression."""
    if self.label_kind in (None, "regression"):
      return None
    present = self.df[self.label].dropna()
    if _is_integer(present) and not _is_text(present):
      values = sorted({int(v) for v in present})
      if values == list(range(len(values))) and len(values) >= 2:
        return None
    return sorted({str(v) for v in present})

  @property
  def n_classes(self) -> int | None:
    if self.label_kind in (None, "regression"):
      return None
    vocabulary = self.label_vocabulary
    if vocabulary is not None:
      return len(vocabulary)
    return int(self.df[self.label].dropna().max()) + 1

  def labels(self) -> pd.Series:
    """The label column as the head reads it (rows with a label only)."""
    self._need_label("labels()")
    series = self.df[self.label].dropna()
    if self.label_kind == "regression":
      return series.astype(float)
    if self.label_vocabulary is not None:
      return series.astype(str).astype(object)
    return series.astype(np.int64)

  def head(self) -> Any:
    """An estlab head for the label: binary, multi-class or regression."""
    self._need_label("head()")
    from estlab import heads  # pylint: disable=g-import-not-at-top
    if self.label_kind == "regression":
      return heads.RegressionHead()
    if self.n_classes == 2:
      return heads.BinaryClassHead(label_vocabulary=self.label_vocabulary)
    return heads.MultiClassHead(self.n_classes,
                                label_vocabulary=self.label_vocabulary)

  def estimator(self, kind: str = "linear", **kwargs) -> Any:
    """A premade estimator over ``feature_columns`` for the label's kind.

    Args:
      kind: ``'linear'`` (LinearClassifier / LinearRegressor) or ``'dnn'``
        (DNNClassifier / DNNRegressor; ``hidden_units`` defaults to [32, 16]).
      **kwargs: passed on, e.g. ``model_dir``, ``optimizer``, ``config``.
    """
    self._need_label("estimator()")
    from estlab import premade  # pylint: disable=g-import-not-at-top
    if kind not in ("linear", "dnn"):
      raise ValueError(f"kind={kind!r}; pass 'linear' or 'dnn'.")
    args = dict(feature_columns=self.feature_columns, **kwargs)
    if kind == "dnn":
      args.setdefault("hidden_units", [32, 16])
    if self.label_kind == "regression":
      cls = premade.LinearRegressor if kind == "linear" else premade.DNNRegressor
      return cls(**args)
    cls = premade.LinearClassifier if kind == "linear" else premade.DNNClassifier
    return cls(n_classes=self.n_classes, label_vocabulary=self.label_vocabulary,
               **args)

  # ---- data ---------------------------------------------------------------

  def input_fn(self, batch_size: int = 32, num_epochs: int | None = 1,
               shuffle: bool = False, **kwargs) -> Any:
    """``pandas_input_fn`` over the features the columns read and the label.

    Rows without a label are left out. Other keyword arguments (``seed``)
    go to ``estlab.inputs.pandas_input_fn``.
    """
    frame = self.df
    y = None
    if self.label is not None:
      y = self.labels()
      frame = frame.loc[y.index]
    return pandas_input_fn(frame[self.feature_keys], y, batch_size=batch_size,
                           num_epochs=num_epochs, shuffle=shuffle, **kwargs)

  def preview(self, n: int = 5) -> pd.DataFrame:
    """The first ``n`` rows after ``estlab.feature_column.encode``.

    Numbers show as they enter the model (missing filled, before the
    device-side normalizer); categorical columns show their ids.
    """
    columns = self.feature_columns
    if not columns:
      return pd.DataFrame(index=self.df.index[:n])
    head = self.df[self.feature_keys].head(n)
    features = next(iter(pandas_input_fn(head, batch_size=max(len(head), 1),
                                         shuffle=False)()))
    out = {}
    for name, value in fc.encode(columns, features).items():
      if isinstance(value, dict):
        ids = value["ids"]
        out[f"{name} ids"] = [row[row >= 0].tolist() for row in ids]
      else:
        for j in range(value.shape[1]):
          out[name if value.shape[1] == 1 else f"{name}[{j}]"] = value[:, j]
    return pd.DataFrame(out, index=head.index)

  def _refresh(self, change: Any = None) -> None:
    del change
    self.code_view.value = f"<pre>{html.escape(self.to_code())}</pre>"
    try:
      self.preview_view.value = self.preview().to_html()
    except (TypeError, ValueError) as error:  # shown, not raised: UI feedback
      self.preview_view.value = f"<pre>{html.escape(str(error))}</pre>"

  # ---- display ------------------------------------------------------------

  def _repr_mimebundle_(self, **kwargs) -> Any:
    return self.widget._repr_mimebundle_(**kwargs)  # pylint: disable=protected-access

  def _ipython_display_(self) -> None:
    from IPython.display import display  # pylint: disable=g-import-not-at-top
    display(self.widget)
