"""Single-process strategies: one device, or data parallel over local devices.

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

__all__ = ["InputContext", "Strategy", "OneDeviceStrategy", "MirroredStrategy"]


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
  """Places batches (split on the batch axis) and state (replicated) on a mesh."""

  def __init__(self, devices: Sequence[jax.Device]):
    devices = list(devices)
    if not devices:
      raise ValueError("A strategy needs at least one device; jax.devices() "
                       f"offers {jax.devices()!r}.")
    self._mesh = Mesh(np.asarray(devices), ("data",))

  @property
  def mesh(self) -> Mesh:
    return self._mesh

  @property
  def num_replicas_in_sync(self) -> int:
    return self._mesh.devices.size

  @property
  def extended(self) -> "Strategy":  # tf.distribute code reads strategy.extended
    return self

  def input_context(self) -> InputContext:
    return InputContext(1, 0, self.num_replicas_in_sync)

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
    return jax.tree.map(
        lambda a: jax.device_put(a, self._batch_sharding(a, axis)), batch)

  def replicated(self) -> NamedSharding:
    return NamedSharding(self._mesh, PartitionSpec())

  def put_replicated(self, tree: Any) -> Any:
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

  Each batch is split across the devices on its first axis; parameters and
  optimizer state are replicated; XLA all-reduces the gradients. The global
  batch size is the input_fn's batch size (divisible by the device count).

  Args:
    devices: devices or None for all of ``jax.local_devices()``.
  """

  def __init__(self, devices: Sequence[jax.Device] | None = None):
    super().__init__(jax.local_devices() if devices is None else devices)
