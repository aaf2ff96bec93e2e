"""DenseFeatures and LinearModel on the device, against numpy references."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from estlab import feature_column as fc
from estlab._engine.host_step import HostStep
from estlab.feature_column import layers
from estlab.inputs import numpy_input_fn

_RNG = np.random.default_rng(0)


def _np_combine(table, ids, weights, combiner, max_norm=None):
  """TF's safe_embedding_lookup_sparse, one row at a time."""
  out = np.zeros((ids.shape[0], table.shape[1]), np.float32)
  for b in range(ids.shape[0]):
    keep = ids[b] >= 0
    if combiner != "sum":
      keep &= weights[b] > 0
    rows, w = table[ids[b][keep]], weights[b][keep]
    if max_norm is not None:
      norms = np.linalg.norm(rows, axis=1, keepdims=True)
      rows = rows * max_norm / np.maximum(norms, max_norm)
    total = (w[:, None] * rows).sum(0)
    scale = {"sum": 1.0, "mean": w.sum(), "sqrtn": np.sqrt((w * w).sum())}[combiner]
    out[b] = total / scale if scale else 0.0
  return out


def _np_multi_hot(ids, weights, n):
  out = np.zeros((ids.shape[0], n), np.float32)
  for b, k in zip(*np.nonzero(ids >= 0)):
    out[b, ids[b, k]] += weights[b, k]
  return out


def _words():
  return fc.categorical_column_with_vocabulary_list(
      "words", ["a", "b", "c", "d"], num_oov_buckets=2)


def _batch():
  return {"words": np.array([["a", "c", "zz"], ["b", "", ""], ["", "", ""],
                             ["d", "d", "a"]], dtype=object),
          "freq": np.array([[1.0, 2.0, 0.5], [3.0, 0, 0], [0, 0, 0],
                            [0.5, -1.0, 4.0]]),
          "age": np.array([15.0, 40.0, 70.0, 30.0]),
          "x": np.arange(8.0).reshape(4, 2)}


@pytest.mark.parametrize("combiner,max_norm", [
    ("mean", None), ("sum", None), ("sqrtn", None), ("mean", 0.3)])
def test_embedding_matches_numpy_inside_jit(combiner, max_norm):
  weighted = fc.weighted_categorical_column(_words(), "freq")
  col = fc.embedding_column(weighted, 3, combiner=combiner, max_norm=max_norm)
  layer = fc.DenseFeatures([col])
  batch = fc.encode([col], _batch())
  params = layer.init(jax.random.PRNGKey(0), batch)
  table = np.asarray(params["params"]["words_weighted_by_freq_embedding"][
      "embedding_weights"])
  assert table.shape == (6, 3)
  got = jax.jit(layer.apply)(params, batch)
  enc = batch["words_weighted_by_freq"]
  np.testing.assert_allclose(
      got, _np_combine(table, enc["ids"], enc["weights"], combiner, max_norm),
      rtol=1e-5, atol=1e-6)
  assert not np.asarray(got)[2].any()  # a row without values gives zeros


def test_dense_features_orders_by_name_and_concatenates_each_form():
  age = fc.numeric_column("age", normalizer_fn=lambda v: (v - 40.0) / 10.0)
  columns = [
      fc.numeric_column("x", shape=2),
      fc.indicator_column(fc.weighted_categorical_column(_words(), "freq")),
      fc.bucketized_column(age, [-1.0, 1.0]),  # normalized units, as TF
      age,
  ]
  batch = fc.encode(columns, _batch())
  layer = fc.DenseFeatures(columns)
  params = layer.init(jax.random.PRNGKey(0), batch)
  assert jax.tree.leaves(params) == []  # no tables: nothing to learn
  got = np.asarray(jax.jit(layer.apply)(params, batch))
  enc = batch["words_weighted_by_freq"]
  expected = np.concatenate([
      ((_batch()["age"] - 40.0) / 10.0)[:, None],              # age
      np.eye(3)[[0, 1, 2, 1]],                                  # age_bucketized
      _np_multi_hot(enc["ids"], enc["weights"], 6),             # words_..._indicator
      _batch()["x"],                                            # x
  ], axis=1)
  np.testing.assert_allclose(got, expected, rtol=1e-6)


class _Model(nn.Module):
  columns: tuple

  @nn.compact
  def __call__(self, features):
    return fc.DenseFeatures(self.columns)(features)


def test_parameter_names_read_like_tf_variables_and_init_is_tfs():
  big = fc.categorical_column_with_identity("video", 2000)
  columns = (fc.embedding_column(big, 16), fc.embedding_column(_words(), 2))
  batch = fc.encode(columns, {"video": np.array([1, 2, 3, 4]), **_batch()})
  params = _Model(columns).init(jax.random.PRNGKey(0), batch)["params"]
  names = {"/".join(k.key for k in path)
           for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]}
  assert names == {"DenseFeatures_0/video_embedding/embedding_weights",
                   "DenseFeatures_0/words_embedding/embedding_weights"}
  table = np.asarray(params["DenseFeatures_0"]["video_embedding"][
      "embedding_weights"])
  stddev = 1 / np.sqrt(16)
  assert np.abs(table).max() <= 2 * stddev  # truncated at two stddevs
  assert abs(table.std() - 0.8796 * stddev) < 0.05 * stddev


def test_shared_embeddings_use_one_table_and_frozen_tables_get_no_gradient():
  a = fc.categorical_column_with_identity("a", 5)
  b = fc.categorical_column_with_identity("b", 5)
  frozen = fc.embedding_column(fc.categorical_column_with_identity("c", 5), 2,
                               trainable=False)
  columns = fc.shared_embeddings([a, b], 2) + [frozen]
  ids = np.array([0, 3, 4])
  batch = fc.encode(columns, {"a": ids, "b": ids, "c": ids})
  layer = fc.DenseFeatures(columns)
  params = layer.init(jax.random.PRNGKey(0), batch)
  assert set(params["params"]) == {"a_b_shared_embedding", "c_embedding"}
  out = np.asarray(layer.apply(params, batch))
  np.testing.assert_array_equal(out[:, 0:2], out[:, 2:4])  # same table rows

  grads = jax.jit(jax.grad(lambda p: layer.apply(p, batch).sum()))(params)
  assert np.abs(grads["params"]["a_b_shared_embedding"]).sum() > 0
  assert not np.asarray(grads["params"]["c_embedding"]["embedding_weights"]).any()


def test_dense_features_explains_wrong_inputs():
  words = _words()
  with pytest.raises(ValueError, match=r"indicator_column.*embedding_column"):
    fc.DenseFeatures([words]).init(jax.random.PRNGKey(0), {})
  col = fc.embedding_column(words, 2)
  with pytest.raises(fc.MissingFeatureError, match=r"'words'.*encode"):
    fc.DenseFeatures([col]).init(jax.random.PRNGKey(0), {"age": jnp.ones(2)})


@pytest.mark.parametrize("sparse_combiner", ["sum", "mean", "sqrtn"])
def test_linear_model_matches_numpy(sparse_combiner):
  age = fc.numeric_column("age")
  weighted = fc.weighted_categorical_column(_words(), "freq")
  columns = [age, fc.bucketized_column(age, [18.0, 65.0]), weighted,
             fc.numeric_column("x", shape=2),
             fc.embedding_column(fc.categorical_column_with_identity("id", 3), 2)]
  raw = {**_batch(), "id": np.array([0, 2, -1, 1])}
  batch = fc.encode(columns, raw)
  model = fc.LinearModel(columns, units=2, sparse_combiner=sparse_combiner)
  params = model.init(jax.random.PRNGKey(0), batch)
  shapes = jax.tree.map(np.shape, params["params"])
  assert shapes == {
      "age": {"weights": (1, 2)}, "age_bucketized": {"weights": (3, 2)},
      "id_embedding": {"embedding_weights": (3, 2), "weights": (2, 2)},
      "words_weighted_by_freq": {"weights": (6, 2)},
      "x": {"weights": (2, 2)}, "bias_weights": (2,)}
  assert not np.asarray(jax.jit(model.apply)(params, batch)).any()  # zeros

  params = jax.tree.map(
      lambda p: jnp.asarray(_RNG.normal(size=p.shape), jnp.float32), params)
  got = np.asarray(jax.jit(model.apply)(params, batch))
  p = jax.tree.map(np.asarray, params["params"])
  enc = batch["words_weighted_by_freq"]
  emb = _np_combine(p["id_embedding"]["embedding_weights"],
                    batch["id"]["ids"], batch["id"]["ids"] >= 0, "mean")
  expected = (raw["age"][:, None] @ p["age"]["weights"]
              + p["age_bucketized"]["weights"][[0, 1, 2, 1]]
              + _np_combine(p["words_weighted_by_freq"]["weights"], enc["ids"],
                            enc["weights"], sparse_combiner)
              + raw["x"] @ p["x"]["weights"]
              + emb @ p["id_embedding"]["weights"]
              + p["bias_weights"])
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_linear_model_compiles_once_per_batch_shape():
  col = fc.categorical_column_with_hash_bucket("w", 100)
  model = fc.LinearModel([col])
  traces = []

  @jax.jit
  def predict(params, batch):
    traces.append(1)
    return model.apply(params, batch)
  first = fc.encode([col], {"w": np.array(["a", "b"], object)})
  params = model.init(jax.random.PRNGKey(0), first)
  for words in (["c", "d"], ["e", ""], ["", ""]):
    predict(params, fc.encode([col], {"w": np.array(words, object)}))
  assert len(traces) == 1
  with pytest.raises(ValueError, match="combiner 'max'"):
    fc.LinearModel([col], sparse_combiner="max").init(jax.random.PRNGKey(0), first)


def test_an_estimator_trains_on_encoded_text_features(tmp_path):
  city = fc.categorical_column_with_vocabulary_list("city", ["a", "b", "c"])
  columns = [fc.numeric_column("x"), fc.embedding_column(city, 4)]

  class CityEstimator(estlab.Estimator):
    _host = HostStep(
        transform=lambda features, labels, mode: (fc.encode(columns, features),
                                                  labels))

  def model_fn(features, labels, mode):
    y = (nn.Dense(1)(fc.DenseFeatures(columns)(features))[:, 0]
         + fc.LinearModel(columns)(features)[:, 0])
    return estlab.EstimatorSpec(mode, predictions={"y": y},
                                loss=jnp.mean((y - labels) ** 2),
                                train_op=optax.adam(0.05))
  x = _RNG.normal(size=256)
  cities = _RNG.choice(np.array(["a", "b", "c", ""], object), 256)
  y = 2 * x + 3.0 * (cities == "b")
  est = CityEstimator(model_fn, str(tmp_path),
                      config=estlab.RunConfig(progress_bar=False))
  data = {"x": x, "city": cities}
  est.train(numpy_input_fn(data, y, batch_size=64, num_epochs=None,
                           shuffle=True, seed=0), steps=150)
  loss = est.evaluate(numpy_input_fn(data, y, batch_size=64, shuffle=False))["loss"]
  assert loss < 0.05 * y.var()
  assert "DenseFeatures_0/city_embedding/embedding_weights" in (
      est.get_variable_names())


@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
@pytest.mark.parametrize("fold_width", [0, 16])  # dense as a matmul / gathered
@pytest.mark.parametrize("kinds", ["both", "categorical", "dense"])
def test_linear_logits_from_one_table_equal_the_per_column_sum(
    combiner, fold_width, kinds, monkeypatch):
  monkeypatch.setattr(layers, "_FOLD_WIDTH", fold_width)
  rng = np.random.default_rng(2)
  units = 2
  # Missing ids (-1), zero and negative weights, an empty row, and ids past a
  # column's rows (clipped to its last row, never read from the next column).
  categorical = {
      "a": (np.array([[0, 2], [-1, -1], [1, 7]]),
            np.array([[1.0, 0.5], [1.0, 1.0], [2.0, 1.0]]), 3),
      "c": (np.array([[4, 4, 0], [1, -1, 3], [9, 2, -1]]),
            np.array([[1.0, -1.0, 3.0], [0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]), 5)}
  dense = {"b": rng.normal(size=(3, 2)), "d": rng.normal(size=(3, 1))}
  if kinds == "categorical":
    dense = {}
  if kinds == "dense":
    categorical = {}
  rows = {**{n: r for n, (_, _, r) in categorical.items()},
          **{n: x.shape[1] for n, x in dense.items()}, "bias_weights": 1}
  names = sorted(rows)
  leaves = {n: jnp.asarray(rng.normal(size=(rows[n], units)), jnp.float32)
            for n in names}
  inputs = {**{n: (jnp.asarray(i, jnp.int32), jnp.asarray(w, jnp.float32))
               for n, (i, w, _) in categorical.items()},
            **{n: jnp.asarray(x, jnp.float32) for n, x in dense.items()}}

  def one_table(leaves):
    table = jnp.concatenate([leaves[n] for n in names])
    return layers.linear_logits(table, names, rows, inputs, combiner)

  def per_column(leaves):
    total = leaves["bias_weights"][0]
    for n, value in inputs.items():
      total = total + (layers.combine(leaves[n], *value, combiner)
                       if isinstance(value, tuple) else value @ leaves[n])
    return total
  got = jax.jit(one_table)(leaves)
  assert got.shape == (3, units)
  np.testing.assert_allclose(got, per_column(leaves), rtol=1e-5, atol=1e-5)
  grads = jax.grad(lambda t: one_table(t).sum())(leaves)
  want = jax.grad(lambda t: per_column(t).sum())(leaves)
  for n in names:
    np.testing.assert_allclose(grads[n], want[n], rtol=1e-5, atol=1e-5)


def test_linear_logits_without_a_bias_or_dense_inputs():
  table = jnp.arange(5.0).reshape(5, 1)
  inputs = {"a": (jnp.array([[1, -1], [4, 9]]), jnp.ones((2, 2)))}
  got = layers.linear_logits(table, ["a"], {"a": 5}, inputs, "sum")
  np.testing.assert_array_equal(got[:, 0], [1.0, 4.0 + 4.0])  # 9 -> row 4


def test_input_layer_and_linear_model_are_tfs_functional_layers_in_a_model_fn(
    tmp_path):
  # tensorflow/models custom_estimator.py: net = tf.feature_column.input_layer(
  # features, params['feature_columns']), then dense layers.
  columns = [fc.numeric_column("b"), fc.numeric_column("a", shape=(2,))]

  def model_fn(features, labels, mode, params):
    net = fc.input_layer(features, params["feature_columns"])
    assert net.shape == (4, 3)
    linear = fc.linear_model(features, params["feature_columns"], units=2)
    y = nn.Dense(1)(net)[:, 0] + linear[:, 0]
    if mode == estlab.ModeKeys.PREDICT:
      return estlab.EstimatorSpec(mode, predictions={"y": y, "net": net})
    loss = jnp.mean((y - labels) ** 2)
    return estlab.EstimatorSpec(mode, loss=loss, train_op=optax.sgd(0.1),
                                predictions={"y": y, "net": net})
  features = {"a": np.arange(8, dtype=np.float32).reshape(4, 2),
              "b": np.array([10., 20., 30., 40.], np.float32)}
  est = estlab.Estimator(model_fn, str(tmp_path), params={
      "feature_columns": columns}, config=estlab.RunConfig(progress_bar=False))
  est.train(lambda: [(features, np.ones(4, np.float32))] * 3)
  net = next(est.predict(lambda: [features], yield_single_examples=False))["net"]
  # Ordered by name, as TF: a's two values, then b.
  np.testing.assert_array_equal(net, np.c_[features["a"], features["b"]])
  assert any(n.endswith("a/weights") for n in est.get_variable_names())
  with pytest.raises(TypeError, match="cols_to_vars=.*drop the argument"):
    fc.input_layer(features, columns, cols_to_vars={})
