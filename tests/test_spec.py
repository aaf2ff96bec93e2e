"""Tests for estlab.spec: ModeKeys, EstimatorSpec's rules, model_fn arguments."""
import functools
import inspect
import itertools

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from estlab import metrics
from estlab.spec import EstimatorSpec, ModeKeys, call_model_fn, model_fn_args

_ARGS = ("features", "labels", "mode", "params", "config")


def test_mode_keys_have_tf_estimators_values():
  assert (ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.PREDICT) == ("train", "eval",
                                                                "infer")
  assert set(ModeKeys.ALL) == {"train", "eval", "infer"}
  assert estlab.ModeKeys is ModeKeys and estlab.EstimatorSpec is EstimatorSpec


# -- EstimatorSpec -------------------------------------------------------------


def test_train_spec_keeps_loss_and_optimizer():
  optimizer = optax.sgd(0.1)
  spec = EstimatorSpec(ModeKeys.TRAIN, loss=jnp.float32(1.5), train_op=optimizer)
  assert spec.mode == "train"
  assert spec.train_op is optimizer
  assert float(spec.loss) == 1.5
  assert spec.scaffold is None


@pytest.mark.parametrize("kwargs,missing", [
    ({"train_op": optax.sgd(0.1)}, "'loss'"),
    ({"loss": jnp.float32(1.0)}, "'train_op'"),
    ({}, "['loss', 'train_op']"),
])
def test_train_spec_names_what_is_missing(kwargs, missing):
  with pytest.raises(ValueError, match="TRAIN mode is missing") as info:
    EstimatorSpec(ModeKeys.TRAIN, **kwargs)
  assert missing in str(info.value)
  assert "optax.adam" in str(info.value)  # shows the fix


def test_eval_spec_needs_a_loss():
  with pytest.raises(ValueError, match="EVAL mode needs a loss"):
    EstimatorSpec(ModeKeys.EVAL, predictions=jnp.zeros(3))
  spec = EstimatorSpec(ModeKeys.EVAL, loss=jnp.float32(0.0))
  assert spec.train_op is None


def test_predict_spec_needs_predictions():
  with pytest.raises(ValueError, match="PREDICT mode needs predictions"):
    EstimatorSpec(ModeKeys.PREDICT, loss=jnp.float32(0.0))
  spec = EstimatorSpec(ModeKeys.PREDICT, predictions={"y": jnp.zeros(3)})
  assert list(spec.predictions) == ["y"]
  assert spec.loss is None


def test_unknown_mode_is_an_error_pointing_at_mode_keys():
  with pytest.raises(ValueError, match="'training'.*ModeKeys"):
    EstimatorSpec("training", loss=jnp.float32(0.0), train_op=optax.sgd(0.1))


def test_loss_of_shape_one_is_reshaped_to_a_scalar():
  spec = EstimatorSpec(ModeKeys.EVAL, loss=jnp.array([2.5]))
  assert spec.loss.shape == ()
  assert float(spec.loss) == 2.5


@pytest.mark.parametrize("shape", [(3,), (2, 1), (1, 1)])
def test_non_scalar_loss_is_an_error_showing_the_shape_and_fix(shape):
  with pytest.raises(ValueError, match="must be a scalar") as info:
    EstimatorSpec(ModeKeys.EVAL, loss=jnp.zeros(shape))
  assert str(shape) in str(info.value)
  assert "jnp.mean" in str(info.value)


@pytest.mark.parametrize("train_op", ["adam", optax.sgd, 0.1],
                         ids=["string", "factory", "float"])
def test_train_op_must_be_an_optax_transformation(train_op):
  with pytest.raises(TypeError, match="optax GradientTransformation"):
    EstimatorSpec(ModeKeys.TRAIN, loss=jnp.float32(0.0), train_op=train_op)


def test_train_op_accepts_a_chained_optax_transformation():
  chained = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
  spec = EstimatorSpec(ModeKeys.TRAIN, loss=jnp.float32(0.0), train_op=chained)
  assert spec.train_op is chained


def test_tf_style_metric_tuple_is_a_type_error_mentioning_estlab_metrics():
  value = update_op = jnp.float32(0.0)
  with pytest.raises(TypeError, match="estlab.metrics") as info:
    EstimatorSpec(ModeKeys.EVAL, loss=jnp.float32(0.0),
                  eval_metric_ops={"accuracy": (value, update_op)})
  assert "'accuracy'" in str(info.value)


def test_estlab_metrics_are_accepted_as_eval_metric_ops():
  accuracy = metrics.accuracy(jnp.array([1, 0]), jnp.array([1, 1]))
  spec = EstimatorSpec(ModeKeys.EVAL, loss=jnp.float32(0.0),
                       eval_metric_ops={"accuracy": accuracy})
  assert spec.eval_metric_ops["accuracy"] is accuracy


def test_scaffold_is_rejected():
  with pytest.raises(ValueError, match="scaffold.*warm_start_from"):
    EstimatorSpec(ModeKeys.TRAIN, loss=jnp.float32(0.0), train_op=optax.sgd(1.0),
                  scaffold=object())


def test_predictions_must_be_an_array_or_dict():
  with pytest.raises(TypeError, match="array or a dict"):
    EstimatorSpec(ModeKeys.PREDICT, predictions=[1.0, 2.0])
  spec = EstimatorSpec(ModeKeys.PREDICT, predictions=np.zeros(2))
  assert spec.predictions.shape == (2,)


def test_hooks_become_tuples():
  hook = estlab.StopAtStepHook(num_steps=1)
  spec = EstimatorSpec(ModeKeys.TRAIN, loss=jnp.float32(0.0),
                       train_op=optax.sgd(1.0), training_hooks=[hook])
  assert spec.training_hooks == (hook,)
  assert spec.training_chief_hooks == ()
  assert spec.evaluation_hooks == () and spec.prediction_hooks == ()


def test_summaries_take_scalars_and_arrays_but_not_empty_ones_or_bad_tags():
  spec = EstimatorSpec(ModeKeys.TRAIN, loss=jnp.float32(0.0),
                       train_op=optax.sgd(1.0),
                       summaries={"acc": jnp.float32(1.0), "w": jnp.zeros(4)})
  assert set(spec.summaries) == {"acc", "w"}
  with pytest.raises(ValueError, match="summaries\\['grad_norm'\\] is empty"):
    EstimatorSpec(ModeKeys.TRAIN, loss=jnp.float32(0.0), train_op=optax.sgd(1.0),
                  summaries={"grad_norm": jnp.zeros((0,))})
  with pytest.raises(TypeError, match="summaries key 3 must be a string"):
    EstimatorSpec(ModeKeys.TRAIN, loss=jnp.float32(0.0), train_op=optax.sgd(1.0),
                  summaries={3: jnp.float32(1.0)})


# -- model_fn_args -------------------------------------------------------------


def _model_fn_taking(names, received=None):
  """A model_fn whose signature is exactly ``names``; records its call."""

  def model_fn(**kwargs):
    if received is not None:
      received.update(kwargs)
    return EstimatorSpec(kwargs.get("mode", ModeKeys.PREDICT),
                         predictions=jnp.zeros(1), loss=jnp.float32(0.0),
                         train_op=optax.sgd(1.0))

  model_fn.__signature__ = inspect.Signature(
      [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
       for n in names])
  return model_fn


_SUBSETS = [s for r in range(len(_ARGS) + 1)
            for s in itertools.combinations(_ARGS, r)]


@pytest.mark.parametrize("names", [s for s in _SUBSETS if "features" in s],
                         ids=lambda s: ",".join(s))
def test_model_fn_args_accepts_every_subset_with_features(names):
  assert model_fn_args(_model_fn_taking(names)) == names


@pytest.mark.parametrize("names", [s for s in _SUBSETS if "features" not in s],
                         ids=lambda s: ",".join(s) or "none")
def test_model_fn_args_requires_features(names):
  with pytest.raises(TypeError, match="`features`"):
    model_fn_args(_model_fn_taking(names))


def test_model_fn_args_follows_the_signature_order():
  assert model_fn_args(_model_fn_taking(("mode", "features"))) == ("mode",
                                                                    "features")


def test_model_fn_args_allows_extra_arguments_with_defaults():
  def model_fn(features, labels, mode, hidden_units=(32,), *args, **kwargs):
    del features, labels, mode, hidden_units, args, kwargs

  assert model_fn_args(model_fn) == ("features", "labels", "mode")


def test_model_fn_args_names_an_unknown_required_argument():
  def my_model(features, labels, hidden_units):
    del features, labels, hidden_units

  with pytest.raises(TypeError, match="'hidden_units'") as info:
    model_fn_args(my_model)
  assert "'my_model'" in str(info.value)
  assert "params" in str(info.value)  # the fix


def test_model_fn_args_reads_bound_methods_and_partials():
  class Model:

    def model_fn(self, features, mode, params):
      del features, mode, params

  def model_fn(features, labels, hidden):
    del features, labels, hidden

  assert model_fn_args(Model().model_fn) == ("features", "mode", "params")
  assert model_fn_args(functools.partial(model_fn, hidden=3)) == ("features",
                                                                  "labels")


def test_model_fn_args_rejects_an_unreadable_callable():
  with pytest.raises(TypeError, match="signature"):
    model_fn_args(3)


# -- call_model_fn -------------------------------------------------------------


@pytest.mark.parametrize("names", [s for s in _SUBSETS if "features" in s],
                         ids=lambda s: ",".join(s))
def test_call_model_fn_passes_exactly_the_arguments_taken(names):
  received = {}
  model_fn = _model_fn_taking(names, received)
  available = dict(features={"x": 1}, labels=[2], mode=ModeKeys.PREDICT,
                   params={"p": 3}, config="config")
  spec = call_model_fn(model_fn, model_fn_args(model_fn), **available)
  assert isinstance(spec, EstimatorSpec)
  assert received == {n: available[n] for n in names}


def _call(model_fn, mode=ModeKeys.TRAIN, labels=np.zeros(2)):
  return call_model_fn(model_fn, model_fn_args(model_fn), {"x": np.zeros(2)},
                       labels, mode, {}, None)


def test_call_model_fn_rejects_a_wrong_return_type():
  def model_fn(features, mode):
    del features, mode
    return {"loss": jnp.float32(0.0)}

  with pytest.raises(TypeError, match="estlab.EstimatorSpec, got dict"):
    _call(model_fn)


def test_call_model_fn_rejects_a_spec_of_another_mode():
  def model_fn(features, mode):
    del features, mode
    return EstimatorSpec(ModeKeys.TRAIN, loss=jnp.float32(0.0),
                         train_op=optax.sgd(1.0))

  with pytest.raises(ValueError, match="mode='eval'.*mode='train'"):
    _call(model_fn, mode=ModeKeys.EVAL)
  assert _call(model_fn).mode == ModeKeys.TRAIN


def test_call_model_fn_explains_missing_labels():
  def model_fn(features, labels, mode):
    del features
    loss = jnp.mean(labels["y"])
    return EstimatorSpec(mode, loss=loss, train_op=optax.sgd(1.0))

  with pytest.raises(ValueError, match="labels were None.*\\(features, labels\\)"):
    _call(model_fn, labels=None)


def test_call_model_fn_lets_other_errors_through():
  def model_fn(features, labels, mode):
    del features, labels, mode
    raise KeyError("x")

  with pytest.raises(KeyError):
    _call(model_fn)
