"""Tests for estlab.run_config: tf.estimator's defaults and rules, frozen, .replace()."""
import dataclasses
import pathlib

import pytest

import estlab
from estlab.run_config import RunConfig


def test_defaults_are_tf_estimators():
  config = RunConfig()
  assert config.model_dir is None
  assert config.tf_random_seed is None
  assert config.save_summary_steps == 100
  assert config.keep_checkpoint_max == 5
  assert config.log_step_count_steps == 100
  assert config.save_checkpoints_steps is None
  assert config.save_checkpoints_secs == 600
  assert config.steps_per_loop == 1


def test_run_config_is_the_public_name():
  assert estlab.RunConfig is RunConfig


def test_steps_cadence_alone_clears_the_600_second_default():
  config = RunConfig(save_checkpoints_steps=50)
  assert (config.save_checkpoints_steps, config.save_checkpoints_secs) == (50, None)


def test_secs_cadence_alone_is_kept():
  config = RunConfig(save_checkpoints_secs=30)
  assert (config.save_checkpoints_steps, config.save_checkpoints_secs) == (None, 30)


@pytest.mark.parametrize("kwargs", [
    {"save_checkpoints_steps": None, "save_checkpoints_secs": None},
    {"save_checkpoints_secs": None},
    {"save_checkpoints_steps": None},
])
def test_explicit_none_cadences_mean_no_periodic_checkpoints(kwargs):
  config = RunConfig(**kwargs)
  assert (config.save_checkpoints_steps, config.save_checkpoints_secs) == (None, None)


def test_both_cadences_is_an_error_showing_both_values():
  with pytest.raises(ValueError, match="at most one") as info:
    RunConfig(save_checkpoints_steps=123, save_checkpoints_secs=456)
  assert "123" in str(info.value) and "456" in str(info.value)


def test_model_dir_accepts_a_path():
  assert RunConfig(model_dir=pathlib.Path("/tmp/m")).model_dir == "/tmp/m"


def test_config_is_immutable():
  config = RunConfig()
  with pytest.raises(dataclasses.FrozenInstanceError):
    config.save_summary_steps = 10
  with pytest.raises(dataclasses.FrozenInstanceError):
    config.model_dir = "/tmp/elsewhere"
  assert config.save_summary_steps == 100


def test_replace_changes_one_field_and_keeps_the_others():
  config = RunConfig(model_dir="/tmp/m", tf_random_seed=7, save_summary_steps=10,
                     keep_checkpoint_max=2, steps_per_loop=4,
                     save_checkpoints_secs=30)
  new = config.replace(log_step_count_steps=5)
  assert new is not config
  assert new.log_step_count_steps == 5
  assert config.log_step_count_steps == 100  # the original is unchanged
  for field in dataclasses.fields(RunConfig):
    if field.name != "log_step_count_steps":
      assert getattr(new, field.name) == getattr(config, field.name), field.name


def test_replace_steps_cadence_clears_the_600_second_default():
  config = RunConfig().replace(save_checkpoints_steps=10)
  assert (config.save_checkpoints_steps, config.save_checkpoints_secs) == (10, None)


def test_replace_secs_cadence_clears_a_steps_cadence():
  config = RunConfig(save_checkpoints_steps=10).replace(save_checkpoints_secs=30)
  assert (config.save_checkpoints_steps, config.save_checkpoints_secs) == (None, 30)


def test_replace_secs_none_turns_time_checkpoints_off():
  # As RunConfig(save_checkpoints_secs=None) and tf.estimator's replace: no
  # periodic checkpoints, not the 600 s default back.
  config = RunConfig().replace(save_checkpoints_secs=None)
  assert (config.save_checkpoints_steps, config.save_checkpoints_secs) == (None, None)


def test_replace_steps_none_keeps_an_explicit_secs_cadence():
  # tf.estimator: only a cadence that is set (not None) clears the other one.
  config = RunConfig(save_checkpoints_secs=30).replace(save_checkpoints_steps=None)
  assert (config.save_checkpoints_steps, config.save_checkpoints_secs) == (None, 30)


def test_replace_both_cadences_is_still_an_error():
  with pytest.raises(ValueError, match="at most one"):
    RunConfig().replace(save_checkpoints_steps=1, save_checkpoints_secs=2)


def test_replace_validates_again():
  with pytest.raises(ValueError, match="keep_checkpoint_max=-1"):
    RunConfig().replace(keep_checkpoint_max=-1)


def test_replace_rejects_an_unknown_field_by_name():
  with pytest.raises(ValueError, match="save_checkpoint_steps"):
    RunConfig().replace(save_checkpoint_steps=10)


_INT_FIELDS = ["save_summary_steps", "save_checkpoints_steps",
               "keep_checkpoint_max", "log_step_count_steps", "steps_per_loop",
               "prefetch_batches"]


@pytest.mark.parametrize("value", [-1, True, "10", 2.5], ids=repr)
@pytest.mark.parametrize("field", _INT_FIELDS)
def test_bad_int_values_name_the_field_and_value(field, value):
  with pytest.raises(ValueError) as info:
    RunConfig(**{field: value})
  assert f"{field}={value!r}" in str(info.value)


def test_steps_per_loop_must_be_positive():
  with pytest.raises(ValueError, match="steps_per_loop=0"):
    RunConfig(steps_per_loop=0)


@pytest.mark.parametrize("value", [-1, True, "600"], ids=repr)
def test_bad_save_checkpoints_secs_names_the_field_and_value(value):
  with pytest.raises(ValueError) as info:
    RunConfig(save_checkpoints_secs=value)
  assert f"save_checkpoints_secs={value!r}" in str(info.value)


@pytest.mark.parametrize("value", [1.5, "7", True], ids=repr)
def test_bad_seed_names_the_field_and_value(value):
  with pytest.raises(ValueError) as info:
    RunConfig(tf_random_seed=value)
  assert f"tf_random_seed={value!r}" in str(info.value)


def test_prefetch_batches_defaults_to_none_meaning_chosen_by_device():
  assert RunConfig().prefetch_batches is None
  assert RunConfig(prefetch_batches=3).prefetch_batches == 3


def test_zero_and_none_are_valid_cadences():
  config = RunConfig(save_summary_steps=0, log_step_count_steps=None,
                     keep_checkpoint_max=None, prefetch_batches=0)
  assert config.save_summary_steps == 0
  assert config.log_step_count_steps is None
  assert config.keep_checkpoint_max is None
  assert config.prefetch_batches == 0


def test_tf_only_arguments_are_accepted_for_porting():
  config = RunConfig(session_config=object(), keep_checkpoint_every_n_hours=1,
                     device_fn=None, protocol="grpc",
                     session_creation_timeout_secs=10)
  assert config.protocol == "grpc"
