"""FeatureColumnBuilder, driven headless through its controls (set ``.value``)."""
import html

import ipywidgets
import numpy as np
import pandas as pd
import pytest

palmerpenguins = pytest.importorskip("palmerpenguins")

from estlab import feature_column as fc  # pylint: disable=g-import-not-at-top
from estlab.widgets.builder import FeatureColumnBuilder  # pylint: disable=g-import-not-at-top

_NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


@pytest.fixture(name="penguins")
def _penguins():
  return palmerpenguins.load_penguins()


@pytest.fixture(name="builder")
def _builder(penguins):
  return FeatureColumnBuilder(penguins, label="species")


def _by_name(columns):
  return {c.name: c for c in columns}


def _specs(columns):
  return sorted((c.name, c.spec()) for c in columns)


def test_proposes_a_kind_per_penguin_column(builder):
  kinds = {name: row.kind.value for name, row in builder.rows.items()}
  assert kinds["species"] == "skip"  # the label
  for name in _NUMERIC:
    assert kinds[name] == "numeric"
  assert kinds["island"] == kinds["sex"] == "vocabulary"
  assert kinds["year"] == "vocabulary"  # three years: categories, not a trend
  columns = _by_name(builder.feature_columns)
  assert "species" not in str(list(columns))
  island = columns["island_indicator"].categorical_column
  assert island.vocabulary_list == ("Biscoe", "Dream", "Torgersen")
  assert island.num_oov_buckets == 1
  assert columns["year_indicator"].categorical_column.vocabulary_list == (
      2007, 2008, 2009)


def test_stats_match_pandas_and_are_shown(builder, penguins):
  for name, row in builder.rows.items():
    assert row.stats["missing"] == penguins[name].isna().sum()
    assert row.stats["missing_pct"] == pytest.approx(
        100 * penguins[name].isna().mean())
    assert row.stats["distinct"] == penguins[name].nunique()
    text = row.widget.children[0].value
    assert f"{100 * penguins[name].isna().mean():.1f}% missing" in text
    chart = row.widget.children[1]
    assert isinstance(chart, ipywidgets.Image)
    assert chart.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_numbers_default_to_the_editable_median(builder, penguins):
  row = builder.rows["body_mass_g"]
  assert row.default.value == penguins["body_mass_g"].median()
  column = _by_name(builder.feature_columns)["body_mass_g"]
  assert column.default_value == (penguins["body_mass_g"].median(),)
  row.default.value = 1.0
  assert _by_name(builder.feature_columns)["body_mass_g"].default_value == (1.0,)
  missing = penguins.index[penguins["body_mass_g"].isna()][0]
  preview = builder.preview(n=missing + 1)
  assert preview.loc[missing, "body_mass_g"] == 1.0
  assert "1.0" in builder.preview_view.value  # the preview widget refreshed


def test_changing_controls_changes_the_columns(builder):
  island = builder.rows["island"]
  island.kind.value = "hash"
  island.hash_size.value = 17
  island.wrap.value = "embedding"
  island.dimension.value = 3
  column = _by_name(builder.feature_columns)["island_embedding"]
  assert column.dimension == 3
  assert column.categorical_column == fc.categorical_column_with_hash_bucket(
      "island", 17)
  flipper = builder.rows["flipper_length_mm"]
  flipper.kind.value = "bucketized"
  flipper.buckets.value = 4
  column = _by_name(builder.feature_columns)["flipper_length_mm_bucketized_indicator"]
  assert column.categorical_column.num_buckets == 4
  assert column.categorical_column.boundaries == tuple(
      np.nanquantile(builder.df["flipper_length_mm"], [0.25, 0.5, 0.75]))
  builder.rows["sex"].kind.value = "skip"
  assert "sex" not in str([c.name for c in builder.feature_columns])
  assert "'sex'" not in builder.to_code()
  assert builder.rows["island"].hash_size.layout.display is None
  assert builder.rows["sex"].wrap.layout.display == "none"  # hidden when skipped


def test_generated_code_rebuilds_equal_columns(builder):
  builder.rows["island"].wrap.value = "embedding"
  builder.rows["bill_depth_mm"].kind.value = "bucketized"
  builder.rows["body_mass_g"].normalize.value = False
  namespace = {}
  exec(builder.to_code(), namespace)  # pylint: disable=exec-used
  assert _specs(namespace["feature_columns"]) == _specs(builder.feature_columns)
  rebuilt = _by_name(namespace["feature_columns"])["bill_length_mm"]
  assert float(rebuilt.normalizer_fn(np.float32(43.9219298245614))) == \
      pytest.approx(0.0, abs=1e-5)


def test_label_kind_and_head(builder):
  assert builder.label_kind == "multi_class"
  assert builder.label_vocabulary == ["Adelie", "Chinstrap", "Gentoo"]
  assert builder.n_classes == 3
  head = builder.head()
  assert type(head).__name__ == "MultiClassHead"
  assert head.logits_dimension == 3
  builder.label_kind_control.value = "regression"
  assert builder.label_kind == "regression"


def test_linear_estimator_trains_and_beats_the_majority(builder, penguins,
                                                        tmp_path):
  model = builder.estimator("linear", model_dir=str(tmp_path))
  assert type(model).__name__ == "LinearClassifier"
  model.train(builder.input_fn(batch_size=32, num_epochs=None, shuffle=True,
                               seed=0), steps=50)
  metrics = model.evaluate(builder.input_fn(batch_size=64, shuffle=False))
  majority = penguins["species"].value_counts(normalize=True).max()
  assert metrics["accuracy"] > majority + 0.2
  assert metrics["global_step"] == 50


def test_input_fn_yields_features_and_labels(builder):
  features, labels = next(iter(builder.input_fn(batch_size=4)()))
  assert sorted(features) == sorted(builder.feature_keys)
  assert "species" not in features
  assert labels.tolist() == ["Adelie"] * 4


def test_id_and_high_cardinality_columns():
  rng = np.random.default_rng(0)
  n = 400
  df = pd.DataFrame({
      "user_id": np.arange(1000, 1000 + n),
      "token": [f"t{i}" for i in range(n)],
      "city": [f"city{i}" for i in rng.integers(0, 150, n)],
      "score": rng.normal(size=n),
      "clicked": rng.integers(0, 2, n),
  })
  builder = FeatureColumnBuilder(df, label="clicked")
  kinds = {name: row.kind.value for name, row in builder.rows.items()}
  assert kinds == {"user_id": "skip", "token": "skip", "city": "hash",
                   "score": "numeric", "clicked": "skip"}
  city = _by_name(builder.feature_columns)["city_embedding"]
  assert city.categorical_column.hash_bucket_size >= df["city"].nunique()
  assert builder.label_kind == "binary"
  assert builder.label_vocabulary is None and builder.n_classes == 2
  assert type(builder.head()).__name__ == "BinaryClassHead"
  assert type(builder.estimator("dnn")).__name__ == "DNNClassifier"


def test_regression_label():
  rng = np.random.default_rng(1)
  df = pd.DataFrame({"x": rng.normal(size=50), "y": rng.normal(size=50)})
  builder = FeatureColumnBuilder(df, label="y")
  assert builder.label_kind == "regression"
  assert type(builder.estimator("linear")).__name__ == "LinearRegressor"


def test_widget_and_display(builder):
  assert isinstance(builder.widget, ipywidgets.VBox)
  bundle = builder._repr_mimebundle_()  # pylint: disable=protected-access
  assert "application/vnd.jupyter.widget-view+json" in bundle
  assert "fc.numeric_column('bill_length_mm'" in html.unescape(builder.code_view.value)


def test_bad_label_names_the_columns(penguins):
  with pytest.raises(ValueError, match="'nope' is not a column"):
    FeatureColumnBuilder(penguins, label="nope")
