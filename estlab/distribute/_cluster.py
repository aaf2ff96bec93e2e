"""Joining the ``jax.distributed`` run that ``TF_CONFIG`` describes.

``MultiWorkerMirroredStrategy()`` calls ``join_tf_config_cluster`` first: a
training task (chief or worker) of a ``TF_CONFIG`` cluster starts
``jax.distributed`` with the chief as coordinator, so a tf.estimator program
launched by a TF_CONFIG launcher (a script, Kubeflow's TFJob, Vertex AI) runs
unchanged. The evaluator, a local run, and a process whose
``jax.distributed`` is already started (by the user, or by JAX's own cluster
detection on Cloud TPU / SLURM) are left as they are.
"""
from __future__ import annotations

import logging
from typing import Any

import jax

from estlab.distribute._tf_config import TFConfig

__all__ = ["check_cluster_strategy", "join_tf_config_cluster"]

logger = logging.getLogger("estlab")


def join_tf_config_cluster(tf_config: TFConfig | None = None) -> bool:
  """Starts ``jax.distributed`` for this ``TF_CONFIG`` training task.

  Process ids are the chief's 0, then the workers' in order; the coordinator
  listens on the chief's ``host:port`` (worker 0's without a chief). On the
  CPU, cross-process collectives need an implementation: gloo is chosen when
  none is set (JAX before 0.5 had none by default).

  Args:
    tf_config: the parsed ``TF_CONFIG``; None reads the environment.

  Returns:
    Whether this call started ``jax.distributed``.

  Raises:
    TFConfigError: ``TF_CONFIG`` is malformed.
    RuntimeError: JAX already ran computations in this process, so it can
      no longer join the cluster.
  """
  config = TFConfig.from_environment() if tf_config is None else tf_config
  if (not config.is_distributed or config.is_evaluator or
      _distributed_is_initialized()):
    return False
  if getattr(jax.config, "jax_cpu_collectives_implementation",
             "gloo") in (None, "none"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  logger.info("TF_CONFIG task %s:%d joins jax.distributed as process %d of %d "
              "(coordinator %s).", config.task_type, config.task_id,
              config.process_id, config.num_processes,
              config.coordinator_address)
  try:
    jax.distributed.initialize(
        coordinator_address=config.coordinator_address,
        num_processes=config.num_processes, process_id=config.process_id)
  except RuntimeError as e:
    raise RuntimeError(
        f"TF_CONFIG names this process {config.task_type}:{config.task_id} "
        f"of a {config.num_processes}-process cluster, but it could not join "
        f"jax.distributed ({e}). Build MultiWorkerMirroredStrategy() before "
        "anything runs JAX (jax.devices(), arrays, estimators), e.g. first "
        "thing in the program.") from e
  return True


def _distributed_is_initialized() -> bool:
  """``jax.distributed.is_initialized()`` (JAX >= 0.4.34), or its answer."""
  is_initialized = getattr(jax.distributed, "is_initialized", None)
  if is_initialized is not None:
    return bool(is_initialized())
  from jax._src import distributed  # pylint: disable=g-import-not-at-top
  return distributed.global_state.client is not None


def check_cluster_strategy(config: Any) -> None:
  """A ``TF_CONFIG`` cluster of several training tasks trains together only
  under ``MultiWorkerMirroredStrategy``: else each task would train alone
  into the shared model_dir. ``Estimator.train`` and ``train_and_evaluate``
  ask first.

  Raises:
    ValueError: naming the task and the fix.
  """
  if config.cluster_spec and config.num_worker_replicas > 1 and not getattr(
      config.train_distribute, "multiprocess", False):
    raise ValueError(
        f"TF_CONFIG makes this task {config.task_type}:{config.task_id} one of "
        f"{config.num_worker_replicas} training tasks, but train_distribute="
        f"{config.train_distribute!r} does not train across them. Pass "
        "RunConfig(train_distribute=estlab.distribute."
        "MultiWorkerMirroredStrategy()).")
