"""Strategies: one device, data parallel over local devices, or over the
devices of every process of a ``jax.distributed`` run.

Example:
  >>> import estlab
  >>> strategy = estlab.distribute.MirroredStrategy()   # all local devices
  >>> config = estlab.RunConfig(train_distribute=strategy)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from estlab.distribute._cluster import join_tf_config_cluster
from estlab.spec import ModeKeys

__all__ = ["InputContext", "Strategy", "OneDeviceStrategy", "MirroredStrategy",
           "MultiWorkerMirroredStrategy", "check_train_distribute",
           "chief_decides", "strategy_for"]


@dataclasses.dataclass(frozen=True)
class InputContext:
  """What an ``input_fn(input_context)`` learns, as ``tf.distribute.InputContext``."""

  num_input_pipelines: int = 1
  input_pipeline_id: int = 0
  num_replicas_in_sync: int = 1

  def get_per_replica_batch_size(self, global_batch_size: int) -> int:
    if global_batch_size % self.num_replicas_in_sync:
      raise ValueError(
          f"global_batch_size={global_batch_size} is not divisible by "
          f"num_replicas_in_sync={self.num_replicas_in_sync}; pick a multiple.")
    return global_batch_size // self.num_replicas_in_sync


class Strategy:
  """Places batches (split on the batch axis) and state (replicated) on a mesh.

  A step's global batch is its per-replica input batches joined
  (``batches_per_step`` of them from each process). A mesh over several
  processes' devices (a ``jax.distributed`` run) takes each process's own
  batches as its rows of the global batch
  (``jax.make_array_from_process_local_data``); see
  ``MultiWorkerMirroredStrategy``.
  """

  def __init__(self, devices: Sequence[jax.Device]):
    devices = list(devices)
    if not devices:
      raise ValueError("A strategy needs at least one device; jax.devices() "
                       f"offers {jax.devices()!r}.")
    self._mesh = Mesh(np.asarray(devices), ("data",))
    processes = sorted({d.process_index for d in devices})
    self._multiprocess = len(processes) > 1
    self._num_processes = len(processes)
    self._local = sum(d.process_index == jax.process_index() for d in devices)
    if self._multiprocess and self._local == 0:
      raise ValueError(
          f"This process ({jax.process_index()}) has none of the strategy's "
          f"devices {devices!r}; every process of a multi-process run trains "
          "on its own devices. Build the strategy over jax.devices().")

  @property
  def mesh(self) -> Mesh:
    return self._mesh

  @property
  def num_replicas_in_sync(self) -> int:
    return self._mesh.devices.size

  @property
  def batches_per_step(self) -> int:
    """Input batches one step takes from this process's input_fn: one per
    local replica, as tf.distribute's (the per-replica batches, joined into
    the global batch, see ``estlab.data._replicas``)."""
    return self._local

  @property
  def extended(self) -> "Strategy":  # tf.distribute code reads strategy.extended
    return self

  @property
  def multiprocess(self) -> bool:
    """Whether the mesh spans the devices of several processes."""
    return self._multiprocess

  def input_context(self) -> InputContext:
    """One input pipeline per process, as tf.distribute's: each process's
    input_fn yields its own rows of every global batch."""
    return InputContext(self._num_processes,
                        jax.process_index() if self._multiprocess else 0,
                        self.num_replicas_in_sync)

  def _local_rows(self, array: Any, batch_axis: int) -> jax.Array:
    """One process's rows of a global batch, split over its devices."""
    array = np.asarray(array)
    if np.ndim(array) <= batch_axis or array.shape[batch_axis] % self._local:
      raise ValueError(
          f"A batch of shape {np.shape(array)} does not split over this "
          f"process's {self._local} devices on axis {batch_axis}: in a "
          "multi-process run the rows of a step in every worker (its "
          "per-replica batches joined) must be a multiple of its device "
          "count. Yield per-replica batches of one size (drop the "
          "remainder, e.g. numpy_input_fn(..., batch_size=B) with the rows "
          "a multiple of B times the device count).")
    spec = [None] * batch_axis + ["data"]
    return jax.make_array_from_process_local_data(
        NamedSharding(self._mesh, PartitionSpec(*spec)), array)

  def _batch_sharding(self, array: Any, batch_axis: int) -> NamedSharding:
    shape = np.shape(array)
    if len(shape) > batch_axis and shape[batch_axis] % self.num_replicas_in_sync == 0:
      spec = [None] * batch_axis + ["data"]
      return NamedSharding(self._mesh, PartitionSpec(*spec))
    # A batch that does not split evenly (the last one of an epoch) is
    # replicated: correct, only less parallel.
    return NamedSharding(self._mesh, PartitionSpec())

  def put_batch(self, batch: Any, *, stacked: bool = False) -> Any:
    """Splits each array's batch axis (axis 1 when ``stacked`` for loops)."""
    axis = 1 if stacked else 0
    if self._multiprocess:
      return jax.tree.map(lambda a: self._local_rows(a, axis), batch)
    return jax.tree.map(
        lambda a: jax.device_put(a, self._batch_sharding(a, axis)), batch)

  def replicated(self) -> NamedSharding:
    return NamedSharding(self._mesh, PartitionSpec())

  def put_replicated(self, tree: Any) -> Any:
    """``tree`` on every device of the mesh; in a multi-process run each
    process passes the same values (the same seed draws the same init)."""
    if self._multiprocess:  # through the host: local arrays cannot reshard
      sharding = self.replicated()
      return jax.tree.map(
          lambda a: jax.make_array_from_callback(
              np.shape(a), sharding, lambda index, v=np.asarray(a): v[index]),
          tree)
    return jax.device_put(tree, self.replicated())

  def abstract_replicated(self, tree: Any) -> Any:
    """``ShapeDtypeStruct`` leaves carrying the replicated sharding (restores)."""
    sharding = self.replicated()
    return jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), tree)

  def __repr__(self):
    return f"{type(self).__name__}(devices={list(self._mesh.devices.flat)!r})"


class OneDeviceStrategy(Strategy):
  """Everything on one device, as ``tf.distribute.OneDeviceStrategy``."""

  def __init__(self, device: jax.Device | str | None = None):
    if device is None or isinstance(device, str):
      platform = None if device is None else device.split(":")[0].lower()
      index = int(device.split(":")[1]) if device and ":" in device else 0
      candidates = jax.devices(platform) if platform else jax.devices()
      if index >= len(candidates):
        raise ValueError(f"OneDeviceStrategy({device!r}): there are only "
                         f"{len(candidates)} such devices: {candidates!r}.")
      device = candidates[index]
    super().__init__([device])


class MirroredStrategy(Strategy):
  """Data parallel over local devices, as ``tf.distribute.MirroredStrategy``.

  As in tf.estimator, the input_fn yields per-replica batches and a training
  step takes ``num_replicas_in_sync`` consecutive ones, joined into the
  global batch (per-replica size times replicas; ``input_context.
  get_per_replica_batch_size(global_batch_size)`` sizes them), one per
  device; parameters and optimizer state are replicated; the loss is the
  mean over the global batch and XLA all-reduces the gradients, so a step
  equals one device's on the joined batches. ``steps`` counts these global
  steps; a finite input's last step takes the batches left. Evaluation
  takes ``num_replicas_in_sync`` batches a step under
  ``RunConfig(eval_distribute=...)``; under ``train_distribute`` alone it
  takes one (tf.estimator evaluates on one device) and ``predict`` one
  (tf.estimator does not distribute it), split over the devices.

  Args:
    devices: devices or None for all of ``jax.local_devices()``.
  """

  def __init__(self, devices: Sequence[jax.Device] | None = None):
    super().__init__(jax.local_devices() if devices is None else devices)


class MultiWorkerMirroredStrategy(Strategy):
  """Data parallel over every process's devices, as
  ``tf.distribute.MultiWorkerMirroredStrategy``, on ``jax.distributed``.

  Start each process with ``jax.distributed.initialize(...)`` (on Cloud TPU
  and SLURM it finds its peers by itself), then build the same Estimator in
  every process. Each process's input_fn yields its own rows of every global
  batch (``input_context.input_pipeline_id`` of
  ``input_context.num_input_pipelines``): per-replica batches for its local
  devices, one per device a step (``MirroredStrategy``'s rule per process);
  the global batch is the processes' batches stacked in process order, and
  every process must yield batches of one size, as many as the others (``train(steps=...)`` over repeating
  input), or the collectives wait for the missing ones. Parameters are
  replicated; XLA all-reduces the gradients. Checkpoints are written together
  (Orbax); summaries by process 0, the chief. ``predict`` yields each
  process the predictions of its own rows. Export once the run ended, from
  one process. A single process works as ``MirroredStrategy``.

  Args:
    devices: devices of every process, or None for ``jax.devices()`` in
      process order (each process's devices hold one block of every global
      batch: its own rows).
  """

  def __init__(self, devices: Sequence[jax.Device] | None = None):
    """Joins the ``TF_CONFIG`` cluster first, where there is one.

    Launched with ``TF_CONFIG`` (a launch script, Kubeflow's TFJob, Vertex
    AI), a chief or worker task whose ``jax.distributed`` is not started yet
    starts it: the chief's address is the coordinator, process ids are the
    chief's 0, then the workers' in order (``_cluster``). Build the strategy
    before anything runs JAX. The evaluator task joins nothing
    (``train_and_evaluate`` there evaluates checkpoints as they appear).
    """
    join_tf_config_cluster()
    if devices is None:
      devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    super().__init__(devices)


def strategy_for(config: Any, mode: str) -> Strategy | None:
  """The strategy ``config`` (a RunConfig) runs ``mode`` under, or None (one
  device): TRAIN ``train_distribute`` (checked: ``check_train_distribute``);
  EVAL and PREDICT ``eval_distribute``, else ``train_distribute``, as TF."""
  if mode != ModeKeys.TRAIN:
    return config.eval_distribute or config.train_distribute
  return check_train_distribute(config.train_distribute)


def check_train_distribute(strategy: Strategy | None) -> Strategy | None:
  """``RunConfig.train_distribute``, checked: in a multi-process run only a
  strategy over every process's devices trains (one process's alone would
  write its own checkpoints into the model_dir the others share)."""
  if jax.process_count() > 1 and not getattr(strategy, "multiprocess", False):
    raise ValueError(
        f"This is process {jax.process_index()} of a {jax.process_count()}"
        f"-process jax.distributed run, but train_distribute={strategy!r} "
        "trains on this process's devices alone. Pass RunConfig("
        "train_distribute=estlab.distribute.MultiWorkerMirroredStrategy()).")
  return strategy


def chief_decides(flag: bool) -> bool:
  """``flag`` as process 0 has it, in every process of a multi-process run
  (one small broadcast): for decisions from a clock (when to save, when to
  evaluate) that all processes must take together. ``flag`` alone otherwise."""
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(multihost_utils.broadcast_one_to_all(np.int32(bool(flag))))
