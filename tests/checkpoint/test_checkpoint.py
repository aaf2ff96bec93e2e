"""Tests for estlab.checkpoint: what a user relies on when a run resumes."""
import os
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from estlab.checkpoint import _checkpointer as ckpt_lib
from estlab._engine.state import TrainState

OPTIMIZERS = {
    'adam': lambda: optax.adam(1e-3),
    'sgd': lambda: optax.sgd(0.1),
    'inject_adam': lambda: optax.inject_hyperparams(optax.adam)(
        learning_rate=0.1),
}


class MLP(nn.Module):
  """Dense_0 (4 -> features), or Dense_0 (4 -> 5) then Dense_1 if hidden."""
  features: int = 3
  hidden: bool = False

  @nn.compact
  def __call__(self, x):
    if self.hidden:
      x = nn.relu(nn.Dense(5)(x))
    return nn.Dense(self.features)(x)


def make_state(opt='adam', *, model_state=None, step=7, features=3,
               hidden=False, seed=0):
  """A realistic TrainState: Flax Dense params, an optax state, an rng."""
  model = MLP(features=features, hidden=hidden)
  params = model.init(jax.random.key(seed), jnp.ones((1, 4)))['params']
  # Make every leaf distinct, so a mix-up between leaves would show.
  params = jax.tree.map(
      lambda x: x + jnp.arange(x.size, dtype=x.dtype).reshape(x.shape), params)
  opt_state = OPTIMIZERS[opt]().init(params)
  return TrainState(
      step=jnp.asarray(step, jnp.int32),
      params=params,
      model_state={} if model_state is None else model_state,
      opt_state=opt_state,
      rng=jax.random.key_data(jax.random.key(seed + 1)),
      bad_step=jnp.asarray(-1, jnp.int32),
  )


def batch_stats():
  return {'batch_stats': {'BatchNorm_0': {
      'mean': jnp.arange(3.0), 'var': jnp.ones(3, jnp.float32)}}}


def assert_same_tree(got, want):
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize('opt,stats', [
    ('adam', False), ('sgd', True), ('inject_adam', True)])
def test_round_trip_keeps_values_structure_and_dtypes(tmp_path, opt, stats):
  state = make_state(opt, model_state=batch_stats() if stats else None)
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    path = ckpt.save(state)
    ckpt.wait_until_finished()
    restored = ckpt.restore(make_state(opt, model_state=(
        jax.tree.map(jnp.zeros_like, batch_stats()) if stats else None),
        step=0, seed=3))
  assert path == os.path.join(str(tmp_path), '7')
  assert type(restored) is TrainState
  assert_same_tree(restored, state)


@pytest.mark.parametrize('stats', [False, True])
def test_scalars_go_to_the_json_unless_there_is_a_model_state(tmp_path,
                                                              stats):
  """step, rng and bad_step are the metadata's train_state (one Orbax item
  less per save) unless a model_state needs the extra item."""
  state = make_state('adam', model_state=batch_stats() if stats else None)
  state = state.replace(bad_step=jnp.asarray(5, jnp.int32))
  with ckpt_lib.Checkpointer(tmp_path, async_save=False) as ckpt:
    ckpt.save(state)
    info = ckpt.read_metadata()
  assert os.path.isdir(tmp_path / '7' / 'extra') == stats
  if stats:
    assert 'train_state' not in info
  else:
    assert info['train_state'] == {
        'step': 7, 'bad_step': 5,
        'rng': np.asarray(state.rng).tolist()}
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    restored = ckpt.restore(make_state('adam', model_state=(
        jax.tree.map(jnp.zeros_like, batch_stats()) if stats else None),
        step=0, seed=3))
  assert_same_tree(restored, state)


def test_json_scalars_restore_onto_the_targets_shardings(tmp_path):
  state = make_state('adam')
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ('data',))
  sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  with ckpt_lib.Checkpointer(tmp_path, async_save=False) as ckpt:
    ckpt.save(state)
    abstract = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharded),
        jax.eval_shape(lambda: state))
    restored = ckpt.restore(abstract)
  assert_same_tree(restored, state)
  for leaf in (restored.step, restored.rng, restored.bad_step):
    assert leaf.sharding == sharded


def test_a_model_state_target_does_not_fit_a_checkpoint_without_one(
    tmp_path):
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    ckpt.save(make_state('adam'))
    with pytest.raises(ckpt_lib.CheckpointMismatchError,
                       match='model_state'):
      ckpt.restore(make_state('adam', model_state=batch_stats()))
    with pytest.raises(ckpt_lib.CheckpointMismatchError,
                       match='model_state'):
      ckpt.restore_variables({'params': make_state('adam').params,
                              **batch_stats()})
    got = ckpt.restore_variables({'params': make_state('adam').params})
  assert_same_tree(got, {'params': make_state('adam').params})


def test_restore_onto_abstract_target_keeps_its_shardings(tmp_path):
  state = make_state('inject_adam', model_state=batch_stats())
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]), ('data',))
  sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  with ckpt_lib.Checkpointer(tmp_path, async_save=False) as ckpt:
    ckpt.save(state)
    abstract = jax.eval_shape(lambda: state)
    abstract = abstract.replace(params=jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharded),
        abstract.params))
    restored = ckpt.restore(abstract)
  assert_same_tree(restored, state)
  assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(restored))
  for leaf in jax.tree.leaves(restored.params):
    assert leaf.sharding == sharded


def _read_with_plain_orbax(model_dir):
  """The README snippet: orbax only, no estlab."""
  import orbax.checkpoint as ocp

  mngr = ocp.CheckpointManager(model_dir)
  step = mngr.latest_step()
  restored = mngr.restore(step, args=ocp.args.Composite(
      params=ocp.args.StandardRestore(),
      metadata=ocp.args.JsonRestore()))
  params, info = restored['params'], restored['metadata']
  mngr.close()
  return step, params, info


def test_plain_orbax_reads_latest_step_params_and_metadata(tmp_path):
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    ckpt.save(make_state(step=3))
    state = make_state(step=9)
    ckpt.save(state, metadata={'loss': 0.25})
  step, params, info = _read_with_plain_orbax(str(tmp_path))
  assert step == 9
  assert_same_tree(params, state.params)
  assert info['step'] == 9 and info['loss'] == 0.25
  assert isinstance(info['time'], float)
  assert isinstance(info['estlab_version'], str)
  assert info['variables'] == {
      'Dense_0/bias': [[3], 'float32'], 'Dense_0/kernel': [[4, 3], 'float32']}


def _dir_bytes(path):
  return sum(os.path.getsize(os.path.join(d, f))
             for d, _, files in os.walk(path) for f in files)


@pytest.mark.parametrize('rows,compressed', [
    (ckpt_lib._orbax.COMPRESS_ROWS, True),  # a table (hash buckets): zstd
    (1000, False),                          # dense layers: raw, faster
], ids=['table', 'dense'])
def test_items_with_tables_are_compressed_others_not_plain_orbax_reads_both(
    tmp_path, rows, compressed):
  # Both mostly zeros (as a wide model's untouched buckets): the rule is by
  # shape, so only the table's item shrinks on disk.
  kernel = np.zeros((rows, 1_000_000 // rows), np.float32)
  kernel[::97, ::3] = 1.5
  state = make_state('sgd').replace(
      params={'Dense_0': {'kernel': jnp.asarray(kernel),
                          'bias': jnp.zeros(kernel.shape[1])}})
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    ckpt.save(state)
    restored = ckpt.restore(state)
  assert_same_tree(restored.params, state.params)
  on_disk = _dir_bytes(tmp_path / '7' / 'params')
  assert (on_disk < 400_000) if compressed else (on_disk > 4_000_000)
  _, params, _ = _read_with_plain_orbax(str(tmp_path))
  assert_same_tree(params, state.params)


def test_a_checkpoint_written_by_plain_orbax_restores(tmp_path):
  """The layout saved with Orbax alone (StandardSave per item) restores."""
  import orbax.checkpoint as ocp

  state = make_state('adam', model_state=batch_stats())
  mngr = ocp.CheckpointManager(str(tmp_path))
  mngr.save(7, args=ocp.args.Composite(
      params=ocp.args.StandardSave(state.params),
      opt_state=ocp.args.StandardSave(state.opt_state),
      extra=ocp.args.StandardSave(ckpt_lib._extra(state)),
      metadata=ocp.args.JsonSave({'step': 7})))
  mngr.wait_until_finished()
  mngr.close()
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    restored = ckpt.restore(make_state('adam', model_state=jax.tree.map(
        jnp.zeros_like, batch_stats()), step=0, seed=3))
    ckpt.save(restored.replace(step=jnp.asarray(8, jnp.int32)))  # next: ours
  assert_same_tree(restored, state)
  assert ckpt_lib.latest_checkpoint(tmp_path) == os.path.join(str(tmp_path), '8')


@pytest.mark.parametrize('opt_state', [
    optax.EmptyState(), (), {}], ids=['EmptyState', 'tuple', 'dict'])
def test_a_stateless_optimizer_round_trips(tmp_path, opt_state):
  # optax.scale / identity / scale_by_learning_rate(constant) keep no state:
  # Orbax refuses an empty item, so it is not written and restores as given.
  state = make_state('sgd').replace(opt_state=opt_state)
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    ckpt.save(state)
    restored = ckpt.restore(make_state('sgd', step=0, seed=3).replace(
        opt_state=opt_state))
  assert_same_tree(restored, state)
  assert type(restored.opt_state) is type(opt_state)
  assert not (tmp_path / '7' / 'opt_state').exists()
  _, params, _ = _read_with_plain_orbax(str(tmp_path))
  assert_same_tree(params, state.params)


def test_optimizer_changed_to_or_from_stateless_is_a_mismatch_error(tmp_path):
  with ckpt_lib.Checkpointer(tmp_path / 'a') as ckpt:
    ckpt.save(make_state('sgd').replace(opt_state=optax.EmptyState()))
    with pytest.raises(ckpt_lib.CheckpointMismatchError,
                       match=r"\['opt_state'\] are empty in one.*warm_start_from"):
      ckpt.restore(make_state('adam'))
  with ckpt_lib.Checkpointer(tmp_path / 'b') as ckpt:
    ckpt.save(make_state('adam'))
    with pytest.raises(ckpt_lib.CheckpointMismatchError, match='opt_state'):
      ckpt.restore(make_state('adam').replace(opt_state=optax.EmptyState()))


def test_max_to_keep_keeps_the_newest(tmp_path):
  with ckpt_lib.Checkpointer(tmp_path, max_to_keep=2) as ckpt:
    for step in (1, 2, 3, 4):
      ckpt.save(make_state(step=step))
    ckpt.wait_until_finished()
    assert ckpt.all_steps() == [3, 4]
    assert ckpt.latest_step() == 4
  assert sorted(os.listdir(tmp_path)) == ['3', '4']


def test_saving_an_existing_step_does_nothing(tmp_path):
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    first = ckpt.save(make_state(step=5), metadata={'run': 1})
    second = ckpt.save(make_state(step=5, seed=9), metadata={'run': 2})
    ckpt.wait_until_finished()
    assert first == second == ckpt.path(5)
    assert ckpt.read_metadata()['run'] == 1
    assert ckpt.all_steps() == [5]


def test_latest_checkpoint_and_step_paths(tmp_path):
  model_dir = str(tmp_path / 'model')
  assert ckpt_lib.latest_checkpoint(model_dir) is None
  with ckpt_lib.Checkpointer(model_dir) as ckpt:
    assert ckpt.latest_step() is None and ckpt.all_steps() == []
    assert not os.path.exists(model_dir)  # reading creates nothing
    ckpt.save(make_state(step=10))
    ckpt.save(make_state(step=20, seed=1))
    ckpt.wait_until_finished()
  assert ckpt_lib.latest_checkpoint(model_dir) == os.path.join(model_dir, '20')
  assert os.path.isdir(os.path.join(model_dir, '10', 'params'))

  # A checkpoint_path is 'model_dir/<step>', also from another Checkpointer.
  with ckpt_lib.Checkpointer(tmp_path / 'other') as other:
    old = other.restore(make_state(step=0), path=os.path.join(model_dir, '10'))
    assert int(old.step) == 10
    assert other.read_metadata(path=model_dir + '/20/')['step'] == 20
    for bad in (model_dir, os.path.join(model_dir, '15'),
                str(tmp_path / 'nowhere' / '3')):
      with pytest.raises(ValueError, match=repr(bad)):
        other.restore_params(path=bad)
    with pytest.raises(ValueError, match='no checkpoint'):
      other.restore(make_state())


def test_unfinished_and_foreign_entries_are_ignored(tmp_path):
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    ckpt.save(make_state(step=5))
  # What a crash during Orbax's save of step 7 leaves behind: its files are
  # written to '<step>.orbax-checkpoint-tmp', renamed to '<step>' at the end.
  shutil.copytree(tmp_path / '5', tmp_path / '7.orbax-checkpoint-tmp')
  # And the summaries an Estimator writes next to its checkpoints.
  os.makedirs(tmp_path / 'eval')
  (tmp_path / 'events.out.tfevents.1.host').write_bytes(b'')
  assert ckpt_lib.latest_checkpoint(tmp_path) == os.path.join(str(tmp_path), '5')
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    assert ckpt.all_steps() == [5]
    assert int(ckpt.restore(make_state(step=0)).step) == 5
    with pytest.raises(ValueError, match='7.orbax-checkpoint-tmp'):
      ckpt.restore_params(path=tmp_path / '7.orbax-checkpoint-tmp')
    # The resumed run saves step 7 over the leftover.
    ckpt.save(make_state(step=7, seed=2))
    ckpt.wait_until_finished()
    assert ckpt.all_steps() == [5, 7]
    assert int(ckpt.restore(make_state(step=0)).step) == 7
  assert not os.path.exists(tmp_path / '7.orbax-checkpoint-tmp')


def test_mismatched_model_names_missing_unexpected_and_shapes(tmp_path):
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    ckpt.save(make_state(hidden=True))   # Dense_0 (4->5), Dense_1 (5->3)
    ckpt.wait_until_finished()
    wider = jax.eval_shape(lambda: make_state(features=2))  # single Dense
    wider = wider.replace(params={
        'Dense_0': {'kernel': jax.ShapeDtypeStruct((4, 6), jnp.float32),
                    'bias': jax.ShapeDtypeStruct((5,), jnp.float32)},
        'Extra_0': {'kernel': jax.ShapeDtypeStruct((6, 1), jnp.float32)}})
    with pytest.raises(ckpt_lib.CheckpointMismatchError) as info:
      ckpt.restore(wider)
  message = str(info.value)
  assert isinstance(info.value, ValueError)
  assert "missing from the checkpoint: ['Extra_0/kernel']" in message
  assert "['Dense_1/bias', 'Dense_1/kernel']" in message
  assert "'Dense_0/kernel': checkpoint (4, 5) vs model (4, 6)" in message
  assert 'Dense_0/bias' not in message
  assert 'new model_dir' in message and 'warm_start_from' in message


def test_changed_optimizer_is_a_mismatch_error(tmp_path):
  with ckpt_lib.Checkpointer(tmp_path, async_save=False) as ckpt:
    ckpt.save(make_state('adam'))
    with pytest.raises(ckpt_lib.CheckpointMismatchError, match='optimizer'):
      ckpt.restore(make_state('inject_adam'))


def test_async_save_is_safe_against_donation(tmp_path):
  state = make_state('adam', model_state=batch_stats())
  before = jax.tree.map(np.array, state)  # host copies

  @jax.jit
  def bump(s):
    return jax.tree.map(lambda x: x + jnp.ones_like(x), s)
  bump_donating = jax.jit(bump, donate_argnums=0)

  with ckpt_lib.Checkpointer(tmp_path, async_save=True) as ckpt:
    ckpt.save(state)
    after = bump_donating(state)   # reuses the saved buffers where it can
    after = bump_donating(after)
    jax.block_until_ready(after)
    ckpt.wait_until_finished()
    restored = ckpt.restore(jax.eval_shape(lambda: after))
  assert_same_tree(restored, before)
  assert int(after.step) == 9


def test_restore_params_and_read_metadata(tmp_path):
  state = make_state(hidden=True, step=4)
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    ckpt.save(state, metadata={'note': 'hello', 'eval': {'loss': 1.5}})
    ckpt.wait_until_finished()
    params = ckpt.restore_params()
    meta = ckpt.read_metadata(step=4)
    with pytest.raises(ValueError, match=r'step 3 .*\[4\]'):
      ckpt.read_metadata(step=3)
  assert_same_tree(params, state.params)
  assert isinstance(params, dict)
  assert meta['note'] == 'hello' and meta['eval'] == {'loss': 1.5}
  assert meta['step'] == 4
  assert meta['variables']['Dense_1/kernel'] == [[5, 3], 'float32']
  assert set(meta['variables']) == set(ckpt_lib.flatten_names(state.params))


def test_restore_variables_needs_no_optimizer(tmp_path):
  state = make_state('inject_adam', model_state=batch_stats(), step=6)
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    ckpt.save(state)
    ckpt.wait_until_finished()
    wanted = {'params': state.params, **batch_stats()}
    got = ckpt.restore_variables(
        jax.eval_shape(lambda: wanted), path=ckpt.path(6))
    assert_same_tree(got, wanted)
    with pytest.raises(ckpt_lib.CheckpointMismatchError, match='Dense_1'):
      ckpt.restore_variables({'params': make_state(hidden=True).params})
    with pytest.raises(ckpt_lib.CheckpointMismatchError, match='model_state'):
      ckpt.restore_variables({'params': state.params})  # no batch_stats


def test_metadata_must_be_json_and_not_reserved(tmp_path):
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    with pytest.raises(ValueError, match="'step'"):
      ckpt.save(make_state(), metadata={'step': 3})
    with pytest.raises(TypeError, match='JSON'):
      ckpt.save(make_state(), metadata={'loss': object()})
    assert ckpt.all_steps() == []
  with pytest.raises(ValueError, match='max_to_keep'):
    ckpt_lib.Checkpointer(tmp_path, max_to_keep=0)


def test_flatten_names_joins_flax_paths():
  params = {'Net_0': {'Dense_0': {'kernel': 1, 'bias': 2}}, 'scale': 3}
  assert ckpt_lib.flatten_names(params) == {
      'Net_0/Dense_0/bias': 2, 'Net_0/Dense_0/kernel': 1, 'scale': 3}
  assert list(ckpt_lib.flatten_names(make_state(hidden=True).params)) == [
      'Dense_0/bias', 'Dense_0/kernel', 'Dense_1/bias', 'Dense_1/kernel']
  adam = optax.adam(1e-3).init({'w': jnp.zeros(2)})
  assert list(ckpt_lib.flatten_names(adam)) == ['0/count', '0/mu/w', '0/nu/w']
