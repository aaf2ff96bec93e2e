"""Optimizers of the premade estimators: TF's names mapped to optax, and FTRL.

``get_optimizer`` turns what a canned ``tf.estimator`` accepted as its
``optimizer`` argument (a name such as ``'Adagrad'``, an optimizer, or a
zero-argument callable) into an ``optax.GradientTransformation`` with
``tf.keras.optimizers.legacy``'s defaults, the learning rate exposed through
``optax.inject_hyperparams`` so the engine can log it. ``ftrl`` is FTRL-Proximal,
written here because optax has none.

Default learning rates of TF 2.15's canned estimators (tensorflow_estimator
``python/estimator/canned/``; these are what the V2 classes do):

=====================  ==================  ==========================================
estimator              default optimizer   learning rate given with a string name
=====================  ==================  ==========================================
Linear*                ``'Ftrl'``          0.2 (``linear.py`` ``_LEARNING_RATE``);
                                           ``optimizer=None``: min(0.2, 1/sqrt(#cols))
DNN*                   ``'Adagrad'``       none: Keras' own default (0.001 for Adagrad)
Baseline*              ``'Ftrl'``          0.3 (``baseline.py`` ``_LEARNING_RATE``)
DNNLinearCombined*     ``'Ftrl'`` +        linear: min(0.005, 1/sqrt(#linear cols));
                       ``'Adagrad'``       dnn: 0.001 (``dnn_linear_combined.py``)
=====================  ==================  ==========================================

Example:
  >>> import jax.numpy as jnp, optax
  >>> from estlab.premade import optimizers
  >>> opt = optimizers.get_optimizer('Ftrl', learning_rate=0.2)
  >>> params = {'w': jnp.zeros(3)}
  >>> state = opt.init(params)
  >>> updates, state = opt.update({'w': jnp.ones(3)}, state, params)
  >>> round(float(state.hyperparams['learning_rate']), 6)
  0.2
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "BASELINE_LEARNING_RATE",
    "DNN_LEARNING_RATE",
    "DNN_LINEAR_COMBINED_DNN_LEARNING_RATE",
    "DNN_LINEAR_COMBINED_LINEAR_LEARNING_RATE",
    "FALLBACK_LEARNING_RATE",
    "FtrlState",
    "KERAS_DEFAULT_LEARNING_RATES",
    "LINEAR_LEARNING_RATE",
    "OPTIMIZER_NAMES",
    "default_baseline_optimizer",
    "default_dnn_linear_combined_optimizers",
    "default_dnn_optimizer",
    "default_linear_optimizer",
    "ftrl",
    "get_optimizer",
    "linear_learning_rate",
]

# ----------------------------------------------------------------------------
# TF's constants, with the file each comes from
# (tensorflow/estimator, tensorflow_estimator/python/estimator/canned/...).
# ----------------------------------------------------------------------------

# linear.py `_LEARNING_RATE`: the rate LinearClassifier/Regressor give a string
# optimizer (their default is the string 'Ftrl'), and the cap of
# `_get_default_optimizer_v2` (used when optimizer=None).
LINEAR_LEARNING_RATE = 0.2
# dnn.py `_LEARNING_RATE`. Only the V1 DNN model_fn passes it; V2's
# `dnn_model_fn_v2` calls `get_optimizer_instance_v2(optimizer)` with no rate,
# so a string gets Keras' default (Adagrad: 0.001).
DNN_LEARNING_RATE = 0.05
# baseline.py `_LEARNING_RATE`: BaselineClassifier/Regressor, default 'Ftrl'.
BASELINE_LEARNING_RATE = 0.3
# dnn_linear_combined.py `_DNN_LEARNING_RATE` and `_LINEAR_LEARNING_RATE`.
DNN_LINEAR_COMBINED_DNN_LEARNING_RATE = 0.001
DNN_LINEAR_COMBINED_LINEAR_LEARNING_RATE = 0.005
# optimizers.py `_LEARNING_RATE`: for a Keras optimizer without a default rate
# (every one named here has one, so it is never used by `get_optimizer`).
FALLBACK_LEARNING_RATE = 0.05

# optimizers.py `_OPTIMIZER_CLS_NAMES_V2`: the names, spelled (and cased) as TF.
OPTIMIZER_NAMES = ("Adagrad", "Adam", "Ftrl", "RMSProp", "SGD")
# The `learning_rate` defaults of tf.keras.optimizers.legacy.* (what
# `get_optimizer_instance_v2` uses for a string when no rate is given).
KERAS_DEFAULT_LEARNING_RATES = {
    "Adagrad": 0.001, "Adam": 0.001, "Ftrl": 0.001, "RMSProp": 0.001,
    "SGD": 0.01,
}

ScalarOrSchedule = Union[float, jax.Array, optax.Schedule]


# ----------------------------------------------------------------------------
# FTRL-Proximal
# ----------------------------------------------------------------------------


class FtrlState(NamedTuple):
  """State of ``ftrl``: per-parameter trees shaped like the params.

  Attributes:
    accumulators: ``n``, the running sum of squared gradients (plus
      ``initial_accumulator_value``); Keras' ``accumulator`` slot.
    linears: ``z``, the FTRL linear term; Keras' ``linear`` slot.
  """
  accumulators: optax.Params
  linears: optax.Params


def _check(name: str, value: Any, ok: bool, rule: str) -> None:
  if not ok:
    raise ValueError(f"ftrl({name}={value!r}): {name} must be {rule}.")


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def ftrl(
    learning_rate: float | jax.Array = 0.001,
    learning_rate_power: float = -0.5,
    initial_accumulator_value: float = 0.1,
    l1_regularization_strength: float = 0.0,
    l2_regularization_strength: float = 0.0,
    l2_shrinkage_regularization_strength: float = 0.0,
    beta: float = 0.0,
) -> optax.GradientTransformation:
  r"""FTRL-Proximal (McMahan et al., 2013), as ``tf.keras.optimizers.Ftrl``.

  Hand-written because optax has no FTRL. It follows Keras' legacy ``Ftrl``
  (the one tf.estimator uses) and TF's ``ApplyFtrl``/``ApplyFtrlV2`` kernels,
  per coordinate, with ``lr`` the learning rate and ``p = -learning_rate_power``::

    g_s    = g + 2 * l2_shrinkage * w          # shrinkage enters z, not n
    n_new  = n + g ** 2
    z      = z + g_s - (n_new ** p - n ** p) / lr * w
    l2_eff = l2 + beta / (2 * lr)
    w      = (sign(z) * l1 - z) / (n_new ** p / lr + 2 * l2_eff) if |z| > l1
             else 0

  Weights whose ``|z|`` stays within ``l1`` are exactly zero: the sparsity
  FTRL is used for. Unlike most optax transforms the step needs the current
  params: ``update`` returns ``new_params - params`` so that
  ``optax.apply_updates`` lands on FTRL's new weights (to rounding; a weight
  FTRL zeroes becomes exactly ``0.0``).

  Args:
    learning_rate: the rate ``lr`` (``alpha`` in the paper), > 0, or an
      optax schedule (``step -> rate``), as Keras' ``Ftrl`` takes one: then
      the result is ``optax.inject_hyperparams(ftrl)``'s, which counts steps.
    learning_rate_power: ``-p``, <= 0. -0.5 is the paper's per-coordinate
      ``1/sqrt(n)`` schedule; 0 a fixed rate.
    initial_accumulator_value: the starting ``n``, >= 0.
    l1_regularization_strength: ``l1`` >= 0; larger gives sparser weights.
    l2_regularization_strength: ``l2`` >= 0, the stabilising L2 of the paper.
    l2_shrinkage_regularization_strength: >= 0, an L2 penalty on the
      magnitude of the weights added to the gradient (``l2_shrinkage * w**2``
      in the loss).
    beta: the paper's ``beta`` (>= 0), folded into ``l2`` as Keras does.

  Returns:
    An ``optax.GradientTransformation`` whose state is an ``FtrlState``.

  Raises:
    ValueError: an argument out of range (the message shows it).

  Example:
    >>> import jax.numpy as jnp, optax
    >>> opt = ftrl(learning_rate=0.1, l1_regularization_strength=0.5)
    >>> params = jnp.array([0.0, 0.0])
    >>> state = opt.init(params)
    >>> updates, state = opt.update(jnp.array([0.1, 2.0]), state, params)
    >>> optax.apply_updates(params, updates)  # the small gradient stays 0
    Array([ 0.        , -0.07407973], dtype=float32)
  """
  if callable(learning_rate):  # a schedule: optax counts the steps
    return optax.inject_hyperparams(ftrl, static_args=_FTRL_STATIC)(
        learning_rate=learning_rate, learning_rate_power=learning_rate_power,
        initial_accumulator_value=initial_accumulator_value,
        l1_regularization_strength=l1_regularization_strength,
        l2_regularization_strength=l2_regularization_strength,
        l2_shrinkage_regularization_strength=(
            l2_shrinkage_regularization_strength),
        beta=beta)
  # Concrete Python numbers are checked here; arrays (e.g. the learning rate
  # inject_hyperparams passes in, possibly traced) are taken as they come.
  if _is_number(learning_rate):
    _check("learning_rate", learning_rate, learning_rate > 0, "> 0")
  for name, value, ok, rule in (
      ("learning_rate_power", learning_rate_power,
       lambda v: v <= 0, "<= 0 (-0.5 is the usual schedule, 0 a fixed rate)"),
      ("initial_accumulator_value", initial_accumulator_value,
       lambda v: v >= 0, ">= 0"),
      ("l1_regularization_strength", l1_regularization_strength,
       lambda v: v >= 0, ">= 0"),
      ("l2_regularization_strength", l2_regularization_strength,
       lambda v: v >= 0, ">= 0"),
      ("l2_shrinkage_regularization_strength",
       l2_shrinkage_regularization_strength, lambda v: v >= 0, ">= 0"),
      ("beta", beta, lambda v: v >= 0, ">= 0"),
  ):
    if _is_number(value):
      _check(name, value, ok(value), rule)

  lr, l1, shrink = learning_rate, l1_regularization_strength, (
      l2_shrinkage_regularization_strength)
  l2 = l2_regularization_strength + beta / (2.0 * lr)

  def power(x):  # x ** -learning_rate_power; TF special-cases -0.5 as sqrt.
    if _is_number(learning_rate_power) and learning_rate_power == -0.5:
      return jnp.sqrt(x)
    return jnp.power(x, -learning_rate_power)

  def leaf(g, w, n, z):
    g = g.astype(w.dtype)
    new_n = n + g * g
    new_n_pow = power(new_n)
    z = z + (g + 2 * shrink * w) - (new_n_pow - power(n)) / lr * w
    quadratic = new_n_pow / lr + 2 * l2
    new_w = jnp.where(jnp.abs(z) > l1, (l1 * jnp.sign(z) - z) / quadratic,
                      jnp.zeros_like(w))
    return (new_w - w).astype(w.dtype), new_n, z

  def init_fn(params):
    return FtrlState(
        accumulators=jax.tree.map(
            lambda p: jnp.full_like(p, initial_accumulator_value), params),
        linears=jax.tree.map(jnp.zeros_like, params))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(
          "ftrl's update got params=None: FTRL computes the new weights "
          "from its state and the current ones, so pass them: "
          "opt.update(grads, state, params).")
    out = jax.tree.map(leaf, updates, params, state.accumulators,
                       state.linears)
    treedef = jax.tree.structure(updates)
    deltas, accumulators, linears = jax.tree.transpose(
        treedef, jax.tree.structure((0, 0, 0)), out)
    return deltas, FtrlState(accumulators=accumulators, linears=linears)

  return optax.GradientTransformation(init_fn, update_fn)


# ----------------------------------------------------------------------------
# Names -> optax, with tf.keras.optimizers.legacy's defaults
# ----------------------------------------------------------------------------

_FTRL_STATIC = ("learning_rate_power", "initial_accumulator_value",
                "l1_regularization_strength", "l2_regularization_strength",
                "l2_shrinkage_regularization_strength", "beta")


def _make(name: str, learning_rate: ScalarOrSchedule):
  """The optax twin of tf.keras.optimizers.legacy.<name>() at its defaults.

  Each of these updates every parameter from its own gradient and slots
  only, so it runs on the parameters raveled into one vector
  (``optax.flatten``): the same numbers, but a few XLA kernels per step
  instead of a few per parameter leaf (a linear model has one leaf per
  column). Its state is then one vector per slot.
  """
  return optax.flatten(_per_leaf(name, learning_rate))


def _per_leaf(name: str, learning_rate: ScalarOrSchedule):
  inject = optax.inject_hyperparams
  if name == "Adagrad":
    # Keras: lr * g / (sqrt(n) + eps); optax: lr * g / sqrt(n + eps).
    # With n >= 0.1 the two differ by under 1e-6 relative.
    return inject(optax.adagrad)(
        learning_rate=learning_rate, initial_accumulator_value=0.1, eps=1e-7)
  if name == "Adam":
    # Keras' epsilon is "epsilon hat" (added to sqrt(v), before the bias
    # correction); optax's to sqrt(v_hat). Equal up to a 1e-7-scale epsilon.
    return inject(optax.adam)(
        learning_rate=learning_rate, b1=0.9, b2=0.999, eps=1e-7)
  if name == "Ftrl":
    return inject(ftrl, static_args=_FTRL_STATIC)(learning_rate=learning_rate)
  if name == "RMSProp":
    # Legacy Keras RMSprop with momentum=0: lr * g / (sqrt(ms) + eps), ms
    # starting at 0 and no bias correction: optax's eps_in_sqrt=False.
    return inject(optax.rmsprop)(
        learning_rate=learning_rate, decay=0.9, eps=1e-7, initial_scale=0.0,
        eps_in_sqrt=False, centered=False, momentum=None)
  return inject(optax.sgd)(learning_rate=learning_rate)  # "SGD"


def get_optimizer(
    optimizer: str | optax.GradientTransformation
    | Callable[[], optax.GradientTransformation],
    learning_rate: ScalarOrSchedule | None = None,
) -> optax.GradientTransformation:
  """An optax optimizer from what a canned estimator takes as ``optimizer``.

  Mirrors ``get_optimizer_instance_v2`` of tensorflow_estimator's
  ``canned/optimizers.py``, with optax transformations in place of Keras
  optimizer objects.

  Args:
    optimizer: one of ``OPTIMIZER_NAMES`` (``'Adagrad'``, ``'Adam'``,
      ``'Ftrl'``, ``'RMSProp'``, ``'SGD'``, cased as TF); an
      ``optax.GradientTransformation`` (returned as is); or a callable with no
      arguments returning one.
    learning_rate: used only with a name: a float > 0 or an optax schedule.
      ``None`` takes Keras' default for that optimizer
      (``KERAS_DEFAULT_LEARNING_RATES``), as TF does.

  Returns:
    An ``optax.GradientTransformation``. For a name, it is built with
    ``optax.inject_hyperparams`` and tf.keras' default hyperparameters, so
    ``state.hyperparams['learning_rate']`` holds the current rate.

  Raises:
    ValueError: an unknown name (the message lists the valid ones), a
      non-positive learning rate, or an object that is not an optimizer.

  Example:
    >>> import jax.numpy as jnp
    >>> opt = get_optimizer('Adam', learning_rate=0.01)
    >>> state = opt.init({'w': jnp.zeros(2)})
    >>> round(float(state.hyperparams['learning_rate']), 6)
    0.01
  """
  if isinstance(optimizer, str):
    if optimizer not in OPTIMIZER_NAMES:
      hint = [n for n in OPTIMIZER_NAMES if n.lower() == optimizer.lower()]
      hint = f" Did you mean {hint[0]!r}?" if hint else ""
      raise ValueError(
          f"Unsupported optimizer name: {optimizer!r}. Supported names are: "
          f"{OPTIMIZER_NAMES} (case matters, as in TF).{hint}")
    if learning_rate is None:
      learning_rate = KERAS_DEFAULT_LEARNING_RATES[optimizer]
    elif not callable(learning_rate) and not learning_rate > 0:
      raise ValueError(
          f"get_optimizer({optimizer!r}, learning_rate={learning_rate!r}): "
          "the learning rate must be > 0 (or None for Keras' default "
          f"{KERAS_DEFAULT_LEARNING_RATES[optimizer]}).")
    return _make(optimizer, learning_rate)
  if isinstance(optimizer, optax.GradientTransformation):
    return optimizer
  if callable(optimizer):
    made = optimizer()
    if isinstance(made, optax.GradientTransformation):
      return made
    raise ValueError(
        f"The optimizer callable {optimizer!r} returned {made!r}, not an "
        "optax.GradientTransformation; return one, e.g. "
        "`lambda: optax.adam(1e-3)`.")
  raise ValueError(
      f"optimizer={optimizer!r} is not an optimizer. Pass one of "
      f"{OPTIMIZER_NAMES}, an optax.GradientTransformation (e.g. "
      "optax.adam(1e-3)), or a zero-argument callable returning one.")


# ----------------------------------------------------------------------------
# The canned estimators' defaults
# ----------------------------------------------------------------------------


def _check_num_columns(name: str, value: Any) -> None:
  if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
    raise ValueError(
        f"{name}={value!r}: pass the number of feature columns, an int > 0 "
        "(e.g. len(feature_columns)).")


def linear_learning_rate(num_feature_columns: int) -> float:
  """min(0.2, 1/sqrt(num_feature_columns)), as linear.py's default optimizer.

  Args:
    num_feature_columns: how many feature columns the linear model has.

  Returns:
    The learning rate of ``_get_default_optimizer_v2`` in linear.py.
  """
  _check_num_columns("num_feature_columns", num_feature_columns)
  return min(LINEAR_LEARNING_RATE, 1.0 / math.sqrt(num_feature_columns))


def default_linear_optimizer(
    num_feature_columns: int) -> optax.GradientTransformation:
  """FTRL at ``linear_learning_rate(num_feature_columns)``.

  This is TF's choice for ``LinearClassifier(optimizer=None)``
  (``_get_default_optimizer_v2`` in linear.py). The constructor's default,
  the string ``'Ftrl'``, gives ``get_optimizer('Ftrl', LINEAR_LEARNING_RATE)``.

  Args:
    num_feature_columns: how many feature columns the linear model has.

  Returns:
    An injected-hyperparameter ``ftrl`` with Keras' other defaults.
  """
  return get_optimizer("Ftrl", linear_learning_rate(num_feature_columns))


def default_dnn_optimizer() -> optax.GradientTransformation:
  """Adagrad at Keras' default rate 0.001, as TF 2's ``DNNClassifier``.

  dnn.py's V2 model_fn passes the default ``'Adagrad'`` to
  ``get_optimizer_instance_v2`` with no learning rate, so Keras' 0.001 applies;
  the 0.05 of ``DNN_LEARNING_RATE`` is TF 1's.

  Returns:
    ``get_optimizer('Adagrad')``.
  """
  return get_optimizer("Adagrad")


def default_baseline_optimizer() -> optax.GradientTransformation:
  """FTRL at 0.3 (``BASELINE_LEARNING_RATE``), as baseline.py.

  Returns:
    ``get_optimizer('Ftrl', BASELINE_LEARNING_RATE)``.
  """
  return get_optimizer("Ftrl", BASELINE_LEARNING_RATE)


def default_dnn_linear_combined_optimizers(
    num_linear_feature_columns: int,
) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
  """The (linear, dnn) optimizers of dnn_linear_combined.py's defaults.

  Linear: FTRL at min(0.005, 1/sqrt(num_linear_feature_columns))
  (``_linear_learning_rate``); DNN: Adagrad at 0.001 (``_DNN_LEARNING_RATE``).

  Args:
    num_linear_feature_columns: how many feature columns the linear part has.

  Returns:
    A ``(linear_optimizer, dnn_optimizer)`` pair.
  """
  _check_num_columns("num_linear_feature_columns", num_linear_feature_columns)
  linear_rate = min(DNN_LINEAR_COMBINED_LINEAR_LEARNING_RATE,
                    1.0 / math.sqrt(num_linear_feature_columns))
  return (get_optimizer("Ftrl", linear_rate),
          get_optimizer("Adagrad", DNN_LINEAR_COMBINED_DNN_LEARNING_RATE))
