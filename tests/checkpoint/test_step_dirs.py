"""Steps of a local model_dir from its listing, as Orbax would find them."""
import os

import jax.numpy as jnp
import optax

from estlab import checkpoint
from estlab._engine.state import TrainState
from estlab.checkpoint._step_dirs import local_steps


def test_local_steps_are_the_committed_digit_named_folders_only(tmp_path):
  assert local_steps(str(tmp_path / "absent")) == []
  for name in ("20", "3", "100.orbax-checkpoint-tmp-1700000000", "eval",
               "events.out.tfevents.1", "7x", "2024", "55"):
    (tmp_path / name).mkdir()
  for name in ("20", "3", "55"):  # committed: Orbax's step metadata
    (tmp_path / name / "_CHECKPOINT_METADATA").write_text("{}")
  for name in ("20", "3", "2024"):
    (tmp_path / name / "metadata").mkdir()
    (tmp_path / name / "metadata" / "metadata").write_text("{}")
  (tmp_path / "12").write_text("a file")
  # (55 lacks estlab's items: damage, which _integrity names; 2024 has no
  # step metadata: never a step)
  assert local_steps(str(tmp_path)) == [3, 20, 55]
  assert local_steps("gs://bucket/model") is None  # remote: ask Orbax


def test_local_steps_agree_with_orbax_after_saves_and_deletions(tmp_path):
  ckpt = checkpoint.Checkpointer(tmp_path, max_to_keep=2, async_save=True)
  params = {"w": jnp.ones(3)}
  state = TrainState(step=jnp.int32(0), params=params, model_state={},
                     opt_state=optax.adam(0.1).init(params),
                     rng=jnp.zeros(2, jnp.uint32), bad_step=jnp.int32(-1))
  for step in (1, 2, 3):
    ckpt.save(state.replace(step=jnp.int32(step)))
    ckpt.save(state.replace(step=jnp.int32(step)))  # in flight: not twice
  ckpt.wait_until_finished()
  assert local_steps(str(tmp_path)) == ckpt.all_steps() == [2, 3]
  assert sorted(os.listdir(tmp_path)) == ["2", "3"]
  ckpt.close()
