"""RunConfig(tf_random_seed=...) seeds unseeded input shuffles, as TF's graph seed."""
import numpy as np

import estlab
from estlab.data import _seed


def _orders(tf_random_seed, calls=2):
  """The label order each train call's input_fn produced, for a Dataset and
  a numpy_input_fn both shuffled without a seed."""
  x = np.arange(32, dtype=np.float32)
  orders = {"dataset": [], "numpy": []}

  def model_fn(features, labels, mode):
    import flax.linen as nn
    import jax.numpy as jnp
    import optax
    y = nn.Dense(1)(features["x"][:, None])[:, 0]
    return estlab.EstimatorSpec(mode, loss=jnp.mean((y - labels) ** 2),
                                train_op=optax.sgd(0.0), predictions={"y": y})

  def dataset_fn():
    ds = estlab.data.Dataset.from_tensor_slices(({"x": x}, x)).shuffle(32)
    orders["dataset"].append([int(l) for _, l in ds.as_numpy_iterator()])
    return ds.batch(8)

  numpy_fn = estlab.inputs.numpy_input_fn({"x": x}, x, batch_size=32,
                                          shuffle=True, num_epochs=1)

  def numpy_wrapped():
    batches = numpy_fn()
    first = next(iter(batches))
    orders["numpy"].append(first[1].astype(int).tolist())
    return [first]

  est = estlab.Estimator(model_fn, config=estlab.RunConfig(
      tf_random_seed=tf_random_seed, progress_bar=False))
  for _ in range(calls):
    est.train(dataset_fn, steps=1)
    est.train(numpy_wrapped, steps=1)
  return orders


def test_a_graph_seed_makes_unseeded_shuffles_reproducible_as_tf():
  a, b = _orders(3), _orders(3)
  assert a == b  # a program reruns identically
  # TF rebuilt its graph per train call: each call sees the same order.
  assert a["dataset"][0] == a["dataset"][1]
  assert a["numpy"][0] == a["numpy"][1]
  assert a["dataset"][0] != list(range(32))
  assert _orders(4)["dataset"][0] != a["dataset"][0]


def test_without_a_graph_seed_each_call_draws_fresh_entropy():
  a = _orders(None)
  assert a["dataset"][0] != a["dataset"][1]
  assert a["numpy"][0] != a["numpy"][1]


def test_op_seeds_follow_the_ops_rank_and_an_explicit_seed_wins():
  with _seed.graph_seed(1):
    first = estlab.data.Dataset.range(50).shuffle(50)
    second = estlab.data.Dataset.range(50).shuffle(50)
    explicit = estlab.data.Dataset.range(50).shuffle(50, seed=9)
  order = list(first.as_numpy_iterator())  # (each iteration reshuffles)
  assert order != list(second.as_numpy_iterator())
  with _seed.graph_seed(1):
    again = estlab.data.Dataset.range(50).shuffle(50)
  assert list(again.as_numpy_iterator()) == order
  assert (list(explicit.as_numpy_iterator()) ==
          list(estlab.data.Dataset.range(50).shuffle(50, seed=9)
               .as_numpy_iterator()))
