"""Stochastic dual coordinate ascent (SDCA) for the linear estimators.

``LinearClassifier/LinearRegressor(optimizer=LinearSDCA(...))``, as
``tf.estimator.experimental.LinearSDCA``: each training example has a dual
variable, found by its id (``example_id_column``) in a table of duals that
lives in the train state; a step visits the batch's examples one at a time
(in a random order, as TF's kernel), moves each dual to the closed-form
(squared loss) or Newton (logistic loss) maximiser of the dual objective and
the unshrunk primal weights by the matching multiple of the example's
features; the model's weights are those shrunk by ``l1 / l2`` (L1's proximal
step). The whole step is one jitted function (a ``lax.scan`` over the batch).

On JAX the step is not a gradient method, so the model_fn computes the new
weights itself and hands them to the engine through its loss: the loss it
returns has TF's value (the head's loss before the step) and the gradient
``params - new_params``, and the train op is ``optax.scale(-1)``, so the
engine's ``params + updates`` is the new weights (to within a rounding of
each weight; the exact ones are kept unshrunk in the state).

The dual table: ``model_state['sdca']['sdca']`` holds ``keys`` (uint32
``[capacity, 2]``: each example id's FarmHash ``Fingerprint64``, 0 = empty;
TF keys its table by ``sdca_fprint``, the 128-bit ``Fingerprint128``; only
which ids are equal matters, so this changes no result),
``example_state`` (float32 ``[capacity, 4]``: TF's dual, primal loss, dual
loss and weight per example), ``unshrunk`` (TF's ``*_unshrunk`` slots) and
``dropped`` (examples that found no free slot). It is an open-addressing
hash table with linear probing and a fixed capacity (a power of two, at
least twice ``max_examples``) so that its shape, and so the compiled step,
never changes; TF's ``MutableDenseHashTable`` grows instead. A full table is
a ``ValueError`` from training (raised by a hook reading ``dropped``).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from estlab.feature_column import _fingerprint
from estlab.heads import BinaryClassHead, RegressionHead
from estlab.hooks import SessionRunHook
from estlab.spec import ModeKeys

__all__ = ["LinearSDCA", "EXAMPLE_ID_KEY", "sdca_model_fn", "loss_type"]

# The encoded feature holding the hashed example ids (uint32 [B, 2]).
EXAMPLE_ID_KEY = "__sdca_example_id__"
_DROPPED = "sdca/examples_dropped"
_LOGISTIC, _SQUARED = "logistic_loss", "squared_loss"


class LinearSDCA:
  """Stochastic dual coordinate ascent for ``LinearClassifier/Regressor``.

  As ``tf.estimator.experimental.LinearSDCA``: pass it as the estimator's
  ``optimizer``. The input_fn's features must hold ``example_id_column``: one
  id per example (strings, bytes or integers; shape ``[B]`` or ``[B, 1]``),
  the same id every time an example is seen. Only a binary
  ``LinearClassifier`` (logistic loss) and a one-dimensional
  ``LinearRegressor`` (squared loss) can use it, with ``sparse_combiner='sum'``.

  The objective minimised is TF's: ``sum_i weight_i * loss_i(w . x_i) +
  l2 / 2 * |w|^2 + l1 * |w|_1`` (the bias is a weight like the others).

  Args:
    example_id_column: name of the feature holding the example ids.
    num_loss_partitions: TF's sigma' (CoCoA+): the number of workers training
      at once; larger values take more careful (smaller) steps.
    num_table_shards: the number of shards of TF's dual table (one per
      parameter server). On JAX the table is one array in the train state,
      so this is checked (None or an int >= 1) and has no other effect.
    symmetric_l1_regularization: l1 >= 0.
    symmetric_l2_regularization: l2 > 0 (TF recommends more than 1: the order
      of the examples' average squared norm).
    adaptive: visit a batch's examples in an order sampled by how far their
      duals are from optimal (TF's adaptive sampling), instead of uniformly.
    max_examples: (estlab only) how many distinct example ids the dual table
      holds; its capacity is the next power of two >= 2 * max_examples.

  Example:
    >>> sdca = LinearSDCA(example_id_column='example_id',
    ...                   symmetric_l2_regularization=2.0)
    >>> classifier = estlab.LinearClassifier(  # doctest: +SKIP
    ...     feature_columns=[estlab.feature_column.numeric_column('x')],
    ...     optimizer=sdca)
  """

  def __init__(self, example_id_column: str, num_loss_partitions: int = 1,
               num_table_shards: int | None = None,
               symmetric_l1_regularization: float = 0.0,
               symmetric_l2_regularization: float = 1.0,
               adaptive: bool = False, *, max_examples: int = 1 << 16):
    self.example_id_column = example_id_column
    self.num_loss_partitions = num_loss_partitions
    self.num_table_shards = num_table_shards
    self.symmetric_l1_regularization = symmetric_l1_regularization
    self.symmetric_l2_regularization = symmetric_l2_regularization
    self.adaptive = adaptive
    self.max_examples = max_examples

  def __repr__(self) -> str:
    return (f"LinearSDCA(example_id_column={self.example_id_column!r}, "
            f"num_loss_partitions={self.num_loss_partitions!r}, "
            f"num_table_shards={self.num_table_shards!r}, "
            f"symmetric_l1_regularization={self.symmetric_l1_regularization!r}"
            f", symmetric_l2_regularization="
            f"{self.symmetric_l2_regularization!r}, adaptive="
            f"{self.adaptive!r}, max_examples={self.max_examples!r})")

  @property
  def capacity(self) -> int:
    """Slots of the dual table: a power of two, at least 2 * max_examples."""
    return 1 << max(1, math.ceil(math.log2(2 * self.max_examples)))

  def check(self) -> None:
    """TF's checks of the options (made when an estimator takes them)."""
    if not isinstance(self.example_id_column, str) or not self.example_id_column:
      raise TypeError(f"LinearSDCA(example_id_column={self.example_id_column!r})"
                      ": pass the name of the feature holding example ids.")
    for name in ("num_loss_partitions", "max_examples"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
          or value < 1:
        raise ValueError(f"LinearSDCA({name}={value!r}) must be an int >= 1.")
    shards = self.num_table_shards
    if shards is not None and (isinstance(shards, bool) or not isinstance(
        shards, (int, np.integer)) or shards < 1):
      raise ValueError(f"LinearSDCA(num_table_shards={shards!r}) must be None "
                       "or an int >= 1.")
    l1, l2 = self.symmetric_l1_regularization, self.symmetric_l2_regularization
    if not l2 > 0.0:
      raise ValueError(f"symmetric_l2_regularization should be positive, got "
                       f"{l2!r}.")
    if not l1 >= 0.0:
      raise ValueError(f"symmetric_l1_regularization should be non-negative, "
                       f"got {l1!r}.")
    if l2 <= 1.0:
      logging.getLogger(__name__).warning(
          "symmetric_l2_regularization for SDCA should typically be larger "
          "than for online optimization methods. Recommended value is of the "
          "order of the average L2 norm of the training examples.")


def loss_type(head: Any) -> str:
  """TF's choice of the SDCA loss from the head, or TF's error."""
  if isinstance(head, BinaryClassHead):
    return _LOGISTIC
  if isinstance(head, RegressionHead) and head.logits_dimension == 1:
    return _SQUARED
  raise ValueError(f"Unsupported head type: {head!r}. LinearSDCA trains a "
                   "BinaryClassHead (logistic loss) or a one-dimensional "
                   "RegressionHead (squared loss); use a gradient optimizer "
                   "(e.g. 'Ftrl') for other heads.")


# -- host: example ids -> uint32 [B, 2] keys ----------------------------------

def hash_example_ids(ids: Any, column: str) -> np.ndarray:
  """The 64-bit keys of a batch's example ids: uint32 ``[B, 2]``, never 0.

  Ids are read as text (bytes as UTF-8, numbers as their decimal strings),
  so ``7`` and ``'7'`` are one example.
  """
  array = np.asarray(ids)
  if array.ndim == 2 and array.shape[1] == 1:
    array = array[:, 0]
  if array.ndim != 1:
    raise ValueError(f"features[{column!r}] (the example ids) must have shape "
                     f"[batch] or [batch, 1], got {array.shape!r}: "
                     f"{array!r:.200}.")
  text = np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v)
                   for v in array.tolist()], dtype=object)
  hashed = _fingerprint.fingerprint64(text)
  keys = np.stack([(hashed >> np.uint64(32)).astype(np.uint32),
                   (hashed & np.uint64(0xFFFFFFFF)).astype(np.uint32)], axis=1)
  keys[(keys == 0).all(axis=1), 1] = 1  # 0 marks an empty slot
  return keys


# -- device: the dual updates (TF's loss updaters) ----------------------------

def _shrink(w: jax.Array, shrinkage: float) -> jax.Array:
  """L1's proximal step: ``sign(w) * max(|w| - shrinkage, 0)``."""
  if shrinkage == 0.0:
    return w
  return jnp.sign(w) * jnp.maximum(jnp.abs(w) - shrinkage, 0.0)


def _updated_dual(kind: str, k: float, y, weight, dual, wx, norm):
  """The new dual of one example (TF's ``ComputeUpdatedDual``).

  ``norm`` is the example's squared norm over l2; ``y`` is +-1 for the
  logistic loss.
  """
  if kind == _SQUARED:
    return dual + (y - dual - wx) / (1.0 + k * norm * weight)
  def newton(_, x):  # 10 Newton steps on TF's modified function, from 0
    t = jnp.tanh(x)
    num = -2 * y * x - wx - k * norm * weight * (0.5 * (1 + t) / y - dual)
    den = -2 * y - k * norm * weight * (1 - t * t) * 0.5 / y
    return x - num / den
  x = jax.lax.fori_loop(0, 10, newton, jnp.zeros_like(wx))
  return 0.5 * (1 + jnp.tanh(x)) / y


def _primal_loss(kind: str, wx, y, weight):
  if kind == _SQUARED:
    return 0.5 * (wx - y) ** 2 * weight
  return jnp.logaddexp(0.0, -y * wx) * weight


def _dual_loss(kind: str, dual, y, weight):
  if kind == _SQUARED:
    return dual * (0.5 * dual - y) * weight
  ay = dual * y
  xlogx = lambda v: jnp.where(v > 0, v * jnp.log(jnp.where(v > 0, v, 1.0)), 0.0)
  return (xlogx(ay) + xlogx(1 - ay)) * weight


def _loss_derivative(kind: str, wx, y, weight):
  if kind == _SQUARED:
    return (wx - y) * weight
  return -jax.nn.sigmoid(-y * wx) * y * weight


_SMOOTHNESS = {_SQUARED: 1.0, _LOGISTIC: 4.0}


# -- device: the table of duals ------------------------------------------------

def _probe(keys: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(slot, usable)``: ``key``'s slot (linear probing) and whether it is
  there or free; not usable when the table is full without it."""
  capacity = keys.shape[0]
  def searching(c):
    i, slot = c
    k = keys[slot]
    return (i < capacity) & ~(jnp.all(k == key) | jnp.all(k == 0))
  def step(c):
    i, slot = c
    return i + 1, (slot + 1) & (capacity - 1)
  start = (key[1] ^ (key[0] * np.uint32(0x9E3779B1))) & np.uint32(capacity - 1)
  i, slot = jax.lax.while_loop(searching, step,
                               (jnp.int32(0), start.astype(jnp.int32)))
  return slot, i < capacity


def _tree_vdot(a: Any, b: Any) -> jax.Array:
  return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a),
                                            jax.tree.leaves(b)))


def sdca_step(logits_of: Callable, unshrunk: Any, keys: jax.Array,
              example_state: jax.Array, features: Mapping, labels: jax.Array,
              weights: jax.Array, rng: jax.Array, *, kind: str,
              options: LinearSDCA) -> dict:
  """One SDCA pass over a batch: TF's ``sdca_optimizer_v2`` kernel, jitted.

  Args:
    logits_of: ``(params, features) -> [B]`` logits, linear in params.
    unshrunk: the unshrunk weights (a tree like the params).
    keys, example_state: the dual table.
    features: the encoded batch, with ``EXAMPLE_ID_KEY``.
    labels: ``[B]`` float32 (0/1 for the logistic loss).
    weights: ``[B]`` float32 example weights.
    rng: orders the visits.
    kind: ``'logistic_loss'`` or ``'squared_loss'``.
    options: the ``LinearSDCA``.

  Returns:
    dict of ``unshrunk``, ``params`` (shrunk), ``keys``, ``example_state``
    and ``dropped`` (examples with no free slot in the table).
  """
  k = float(options.num_loss_partitions)
  l2 = float(options.symmetric_l2_regularization)
  shrinkage = float(options.symmetric_l1_regularization) / l2
  shrink = lambda tree: jax.tree.map(lambda w: _shrink(w, shrinkage), tree)
  ids = features[EXAMPLE_ID_KEY]
  y = labels if kind == _SQUARED else 2.0 * labels - 1.0
  rows = ids.shape[0]
  prev_wx = logits_of(shrink(unshrunk), features)  # TF's prev_wx

  def row(i):
    return jax.tree.map(
        lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=True), features)

  def example(i):
    """x_i as a tree (the logits are linear in the params) and |x_i|^2."""
    x = jax.grad(lambda p: logits_of(p, row(i))[0])(unshrunk)
    return x, sum(jnp.sum(a * a) for a in jax.tree.leaves(x))

  if options.adaptive:  # TF's probabilities, sampled without replacement
    def probability(i):
      _, sq = example(i)
      slot, usable = _probe(keys, ids[i])
      dual = jnp.where(usable, example_state[slot, 0], 0.0)
      kappa = dual + _loss_derivative(kind, prev_wx[i], y[i], weights[i])
      return weights[i] * jnp.sqrt(sq + l2 * _SMOOTHNESS[kind]) * jnp.abs(kappa)
    p = jax.vmap(probability)(jnp.arange(rows))
    gumbel = jax.random.gumbel(rng, (rows,))
    order = jnp.argsort(-(jnp.log(jnp.maximum(p, 1e-30)) + gumbel))
  else:
    order = jax.random.permutation(rng, rows)

  def visit(carry, i):
    delta, keys, state, dropped = carry
    x, sq = example(i)
    slot, usable = _probe(keys, ids[i])
    found = jnp.all(keys[slot] == ids[i])
    dual = jnp.where(found, state[slot, 0], 0.0)
    w = jax.tree.map(lambda u, d: _shrink(u + k * d, shrinkage),
                     unshrunk, delta)
    new_dual = _updated_dual(kind, k, y[i], weights[i], dual,
                             _tree_vdot(x, w), sq / l2)
    step = jnp.where(usable, (new_dual - dual) * weights[i] / l2, 0.0)
    delta = jax.tree.map(lambda d, a: d + step * a, delta, x)
    entry = jnp.stack([new_dual, _primal_loss(kind, prev_wx[i], y[i], weights[i]),
                       _dual_loss(kind, dual, y[i], weights[i]), weights[i]])
    keys = keys.at[slot].set(jnp.where(usable, ids[i], keys[slot]))
    state = state.at[slot].set(jnp.where(usable, entry, state[slot]))
    return (delta, keys, state, dropped + (~usable).astype(jnp.int32)), None

  zeros = jax.tree.map(jnp.zeros_like, unshrunk)
  (delta, keys, example_state, dropped), _ = jax.lax.scan(
      visit, (zeros, keys, example_state, jnp.int32(0)), order)
  unshrunk = jax.tree.map(jnp.add, unshrunk, delta)
  return {"unshrunk": unshrunk, "params": shrink(unshrunk), "keys": keys,
          "example_state": example_state, "dropped": dropped}


def _duality_gap(params: Any, example_state: jax.Array,
                 options: LinearSDCA) -> jax.Array:
  """TF's ``approximate_duality_gap`` over the table (NaN before any example)."""
  sums = jnp.sum(example_state, axis=0)
  leaves = jax.tree.leaves(params)
  l1 = options.symmetric_l1_regularization * sum(jnp.sum(jnp.abs(w))
                                                 for w in leaves)
  l2 = options.symmetric_l2_regularization * sum(jnp.sum(w * w) for w in leaves)
  return (sums[1] + sums[2] + l1 + l2) / sums[3]


class _DualTable(nn.Module):
  """The SDCA state (collection ``'sdca'``) and one step over a batch."""

  options: LinearSDCA
  kind: str
  logits_of: Callable

  @nn.compact
  def __call__(self, params, features, labels, weights):
    capacity = self.options.capacity
    unshrunk = self.variable("sdca", "unshrunk",
                             lambda: jax.tree.map(jnp.zeros_like, params))
    keys = self.variable("sdca", "keys", jnp.zeros, (capacity, 2), jnp.uint32)
    state = self.variable("sdca", "example_state", jnp.zeros, (capacity, 4),
                          jnp.float32)
    dropped = self.variable("sdca", "dropped", jnp.zeros, (), jnp.int32)
    if self.is_initializing():  # init's batch is not trained on
      return params, keys.value, state.value, dropped.value
    out = sdca_step(self.logits_of, unshrunk.value, keys.value, state.value,
                    features, labels, weights, self.make_rng("dropout"),
                    kind=self.kind, options=self.options)
    unshrunk.value, keys.value, state.value = (out["unshrunk"], out["keys"],
                                               out["example_state"])
    dropped.value = dropped.value + out["dropped"]
    return out["params"], keys.value, state.value, dropped.value


class _TableFullHook(SessionRunHook):
  """Raises once the dual table had no slot for an example."""

  _EVERY = 16  # reads of the step outputs (a device sync), every N runs

  def __init__(self, options: LinearSDCA):
    self._options = options
    self._runs = 0

  def after_run(self, run_context, run_values):
    del run_context
    self._runs += 1
    if self._runs % self._EVERY != 1:
      return
    dropped = int(np.asarray(run_values.results[_DROPPED]))
    if dropped:
      raise ValueError(
          f"LinearSDCA's table of duals is full: {dropped} example(s) found "
          f"no slot (max_examples={self._options.max_examples}, capacity "
          f"{self._options.capacity}). Pass LinearSDCA(..., max_examples=N) "
          "with N at least the number of distinct example ids.")


def _assign(params: Any, new_params: Any) -> jax.Array:
  """A zero whose gradient w.r.t. ``params`` is ``params - new_params``:
  with ``optax.scale(-1)`` the engine's update makes params ``new_params``."""
  term = sum(jnp.vdot(p, jax.lax.stop_gradient(p - n)) for p, n in
             zip(jax.tree.leaves(params), jax.tree.leaves(new_params)))
  return term - jax.lax.stop_gradient(term)


def _fraction_of_zero(params: Any) -> jax.Array:
  leaves = [w for path, w in jax.tree_util.tree_leaves_with_path(params)
            if "bias_weights" not in jax.tree_util.keystr(path)]
  if not leaves:
    return jnp.zeros((), jnp.float32)
  zeros = sum(jnp.sum(w == 0) for w in leaves)
  return zeros.astype(jnp.float32) / sum(w.size for w in leaves)


def sdca_model_fn(head: Any, make_linear: Callable[..., nn.Module],
                  options: LinearSDCA) -> Callable:
  """TF's ``_sdca_model_fn``: the linear model, trained by SDCA.

  Args:
    head: a ``BinaryClassHead`` or a one-dimensional ``RegressionHead``.
    make_linear: ``make_linear(name=None)`` builds the linear model module
      (one output); called with ``name='linear'`` it owns TF's variables.
    options: the ``LinearSDCA``.
  """
  kind = loss_type(head)
  hook = _TableFullHook(options)
  linear = make_linear(None)

  def logits_of(params, features):
    return linear.apply({"params": params}, features)[:, 0]

  def model_fn(features, labels, mode):
    module = make_linear("linear")
    logits = module(features)
    if mode != ModeKeys.TRAIN:
      return head.create_estimator_spec(features=features, mode=mode,
                                        logits=logits, labels=labels)
    spec = head.create_estimator_spec(
        features=features, mode=mode, logits=logits, labels=labels,
        optimizer=optax.scale(-1.0))
    params = module.variables["params"]
    weights = head._weights(features, logits)  # pylint: disable=protected-access
    weights = (jnp.ones(logits.shape[:1], jnp.float32) if weights is None
               else jnp.reshape(weights, (-1,)))
    labels = jnp.reshape(jnp.asarray(labels, jnp.float32), (-1,))
    new_params, keys, state, dropped = _DualTable(
        options, kind, logits_of, name="sdca")(params, features, labels,
                                               weights)
    bias = [w for path, w in jax.tree_util.tree_leaves_with_path(new_params)
            if "bias_weights" in jax.tree_util.keystr(path)]
    summaries = {
        **(spec.summaries or {}),
        "bias": bias[0].reshape(-1)[0],
        "fraction_of_zero_weights": _fraction_of_zero(new_params),
        "approximate_duality_gap": _duality_gap(new_params, state, options),
        "examples_seen": jnp.sum(jnp.any(keys != 0, axis=1)),
        _DROPPED: dropped,
    }
    loss = jax.lax.stop_gradient(spec.loss) + _assign(params, new_params)
    return spec._replace(loss=loss, summaries=summaries,
                         training_hooks=tuple(spec.training_hooks) + (hook,))
  model_fn.__name__ = "sdca_model_fn"
  return model_fn


def check_labels(labels: np.ndarray, kind: str) -> None:
  """TF's kernel check: logistic SDCA takes labels 0.0 or 1.0 only."""
  if kind == _LOGISTIC and labels is not None:
    bad = labels[(labels != 0.0) & (labels != 1.0)]
    if bad.size:
      raise ValueError(f"Only labels of 0.0 or 1.0 are supported right now. "
                       f"Found example with label: {bad.reshape(-1)[0]!r}.")


def host_example_ids(features: Mapping, options: LinearSDCA) -> np.ndarray:
  """The batch's hashed example ids, or a clear error when missing."""
  column = options.example_id_column
  if column not in features:
    raise ValueError(
        f"LinearSDCA(example_id_column={column!r}): the features have no "
        f"{column!r}; they are {sorted(features)!r}. Add one id per example "
        "to the input_fn's features (the same id every epoch).")
  return hash_example_ids(features[column], column)
