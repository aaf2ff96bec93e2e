"""TF_CONFIG, the cluster description launchers set, parsed and checked.

Launch scripts, Kubeflow's TFJob and Vertex AI start every task of a
tf.estimator job with the same program and a ``TF_CONFIG`` environment
variable naming the cluster and the task::

  {"cluster": {"chief": ["host0:2222"], "worker": ["host1:2222"],
               "evaluator": ["host2:2222"]},
   "task": {"type": "worker", "index": 0}}

``TFConfig`` is that, checked, plus what ``jax.distributed`` needs: the
training tasks (chief, then workers in order) are processes ``0 .. n-1`` and
the chief's address is the coordinator's. TF's rules, from tf.estimator's
``RunConfig`` and ``multi_worker_util`` (MultiWorkerMirroredStrategy):

* no ``cluster``: one local process (a ``task``, if given, must be worker 0);
* job names are ``chief``, ``worker`` and ``evaluator``; at most one chief and
  one evaluator. A cluster without a chief is accepted when it has workers:
  worker 0 is then the chief, as in TF's MultiWorkerMirroredStrategy (TF's
  ``RunConfig`` without a strategy insisted on a chief). A cluster with
  neither is an error;
* the evaluator does not join training; it may be absent from ``cluster``;
* ``ps`` and the legacy ``master`` jobs are errors: there are no parameter
  servers in estlab (gradients are all-reduced), and ``master`` is ``chief``.

Every malformed value raises ``TFConfigError`` (a ``ValueError``) naming the
value and the fix.

Example:
  >>> config = TFConfig.parse(
  ...     '{"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},'
  ...     ' "task": {"type": "worker", "index": 1}}')
  >>> config.process_id, config.num_processes, config.coordinator_address
  (2, 3, 'a:1')
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any, Iterator

__all__ = ["ClusterSpec", "TFConfig", "TFConfigError", "CHIEF", "WORKER",
           "EVALUATOR", "TF_CONFIG_ENV"]

TF_CONFIG_ENV = "TF_CONFIG"
CHIEF, WORKER, EVALUATOR = "chief", "worker", "evaluator"
_JOBS = (CHIEF, WORKER, EVALUATOR)
_EXAMPLE = ('{"cluster": {"chief": ["host0:2222"], "worker": ["host1:2222"]}, '
            '"task": {"type": "worker", "index": 0}}')


class TFConfigError(ValueError):
  """The ``TF_CONFIG`` environment variable is malformed; the message says
  which value and how to fix it."""


class ClusterSpec(Mapping):
  """A read-only ``{job: [address, ...]}``, with ``tf.train.ClusterSpec``'s
  reading methods (``as_dict``, ``jobs``, ``num_tasks``, ``job_tasks``,
  ``task_address``). Empty (falsy) outside a cluster, as TF's.
  """

  def __init__(self, cluster: Mapping[str, Any] | None = None):
    self._jobs = {job: tuple(addresses)
                  for job, addresses in (cluster or {}).items()}

  def __getitem__(self, job: str) -> tuple[str, ...]:
    return self._jobs[job]

  def __iter__(self) -> Iterator[str]:
    return iter(self._jobs)

  def __len__(self) -> int:
    return len(self._jobs)

  def __eq__(self, other: Any) -> bool:
    if isinstance(other, Mapping):
      return self.as_dict() == {k: list(v) for k, v in other.items()}
    return NotImplemented

  __hash__ = None

  @property
  def jobs(self) -> list[str]:
    return sorted(self._jobs)

  def as_dict(self) -> dict[str, list[str]]:
    return {job: list(addresses) for job, addresses in self._jobs.items()}

  def num_tasks(self, job_name: str) -> int:
    return len(self._job(job_name))

  def job_tasks(self, job_name: str) -> list[str]:
    return list(self._job(job_name))

  def task_address(self, job_name: str, task_index: int) -> str:
    tasks = self._job(job_name)
    if not 0 <= task_index < len(tasks):
      raise ValueError(f"No task with index {task_index!r} in job "
                       f"{job_name!r}: it has {len(tasks)} tasks {tasks!r}.")
    return tasks[task_index]

  def _job(self, job_name: str) -> tuple[str, ...]:
    if job_name not in self._jobs:
      raise ValueError(f"No such job in cluster: {job_name!r}; jobs are "
                       f"{self.jobs!r}.")
    return self._jobs[job_name]

  def __repr__(self) -> str:
    return f"ClusterSpec({self.as_dict()!r})"


@dataclasses.dataclass(frozen=True)
class TFConfig:
  """One task's view of a ``TF_CONFIG`` cluster, checked.

  Attributes:
    cluster: every job's addresses (the evaluator's included), or empty when
      ``TF_CONFIG`` names no cluster (one local process).
    task_type: ``'chief'``, ``'worker'`` or ``'evaluator'``; ``'worker'``
      locally, as TF's ``RunConfig``.
    task_id: the task's index in its job.
    process_id: this task's ``jax.distributed`` process id (chief 0, then the
      workers in order); None for the evaluator, which does not train.
    num_processes: how many processes train (chiefs and workers); 1 locally.
    coordinator_address: ``host:port`` of the chief (worker 0 without one),
      where ``jax.distributed``'s coordinator listens; None locally.
    model_dir: ``TF_CONFIG["model_dir"]``, or None.
    raw: the parsed JSON, for the keys estlab does not read (``environment``,
      ``service``, ``session_master`` ...).
  """

  cluster: ClusterSpec
  task_type: str
  task_id: int
  process_id: int | None
  num_processes: int
  coordinator_address: str | None
  model_dir: str | None = None
  raw: Mapping[str, Any] = dataclasses.field(
      default_factory=dict, repr=False, compare=False)

  @property
  def is_distributed(self) -> bool:
    """Whether ``TF_CONFIG`` names a cluster (else: one local process)."""
    return bool(self.cluster)

  @property
  def is_evaluator(self) -> bool:
    return self.task_type == EVALUATOR

  @property
  def is_chief(self) -> bool:
    """The chief, or worker 0 of a cluster without one; never the evaluator
    (TF's ``RunConfig.is_chief``)."""
    return self.process_id == 0

  @property
  def has_evaluator(self) -> bool:
    """Whether the cluster has an evaluator task (which then evaluates
    instead of the training tasks)."""
    return bool(self.cluster.get(EVALUATOR))

  @property
  def global_id_in_cluster(self) -> int | None:
    """TF's ``RunConfig.global_id_in_cluster``: the chief 0, then the other
    jobs sorted by name (evaluator before worker), each by index; None for
    the evaluator. (Not the JAX process id: that one skips the evaluator.)"""
    if not self.is_distributed:
      return 0
    if self.is_evaluator:
      return None
    order = ([CHIEF] if CHIEF in self.cluster else []) + sorted(
        job for job in self.cluster if job != CHIEF)
    offset = 0
    for job in order:
      if job == self.task_type:
        return offset + self.task_id
      offset += len(self.cluster[job])
    raise AssertionError(f"{self.task_type!r} is not in {self.cluster!r}")

  @classmethod
  def from_environment(cls, environ: Mapping[str, str] | None = None
                       ) -> "TFConfig":
    """Parses ``environ["TF_CONFIG"]`` (``os.environ`` by default); an unset
    or empty variable is one local process."""
    environ = os.environ if environ is None else environ
    return cls.parse(environ.get(TF_CONFIG_ENV, ""))

  @classmethod
  def parse(cls, text: str | Mapping[str, Any] | None) -> "TFConfig":
    """Parses and checks a ``TF_CONFIG`` value (JSON text or its dict).

    Raises:
      TFConfigError: the value is malformed; the message shows it and the fix.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
      return cls(ClusterSpec(), WORKER, 0, 0, 1, None)
    value = _load(text)
    model_dir = value.get("model_dir")
    if model_dir is not None and (not isinstance(model_dir, str) or
                                  not model_dir):
      raise TFConfigError(
          f"TF_CONFIG['model_dir']={model_dir!r} must be a non-empty path "
          "string; set it to the model directory or leave it out.")
    raw = json.loads(json.dumps(value))  # a copy
    cluster = _cluster(value, text)
    task = value.get("task", {})
    if not isinstance(task, Mapping):
      raise TFConfigError(
          f"TF_CONFIG['task']={task!r} must be an object like "
          f'{{"type": "worker", "index": 0}}; TF_CONFIG={text!r}.')
    if not cluster:
      return _local(task, text, model_dir, raw)
    task_type, task_id = _task(task, text)
    if task_type == EVALUATOR:
      if task_id != 0:
        raise TFConfigError(
            f"TF_CONFIG task {{'type': 'evaluator', 'index': {task_id!r}}}: "
            "there is at most one evaluator, with index 0 (as in "
            "tf.estimator.train_and_evaluate); set \"index\": 0.")
      process_id = None
    else:
      if task_type not in cluster or not cluster[task_type]:
        raise TFConfigError(
            f"TF_CONFIG task type {task_type!r} is not a job of the cluster "
            f"{dict(cluster.as_dict())!r}; add this task's address to "
            f"cluster[{task_type!r}] or fix task.type. TF_CONFIG={text!r}.")
      size = len(cluster[task_type])
      if task_id >= size:
        raise TFConfigError(
            f"TF_CONFIG task index {task_id!r} is out of range for job "
            f"{task_type!r}, which has {size} address(es) "
            f"{list(cluster[task_type])!r}: use an index in 0..{size - 1} or "
            f"add the address. TF_CONFIG={text!r}.")
      process_id = task_id + (len(cluster.get(CHIEF, ())) if task_type == WORKER
                              else 0)
    leader = (cluster[CHIEF][0] if cluster.get(CHIEF)
              else cluster[WORKER][0])
    return cls(cluster, task_type, task_id, process_id,
               len(cluster.get(CHIEF, ())) + len(cluster.get(WORKER, ())),
               leader, model_dir, raw)


def _load(text: str | Mapping[str, Any]) -> Mapping[str, Any]:
  if isinstance(text, Mapping):
    value = text
  else:
    if not isinstance(text, str):
      raise TFConfigError(f"TF_CONFIG must be JSON text, got {text!r}.")
    try:
      value = json.loads(text)
    except json.JSONDecodeError as e:
      raise TFConfigError(
          f"TF_CONFIG={text!r} is not valid JSON ({e}); set it to a JSON "
          f"object such as {_EXAMPLE} (mind the double quotes).") from None
  if not isinstance(value, Mapping):
    raise TFConfigError(
        f"TF_CONFIG={text!r} must be a JSON object with 'cluster' and "
        f"'task', such as {_EXAMPLE}.")
  return value


def _cluster(value: Mapping[str, Any], text: Any) -> ClusterSpec:
  """``value['cluster']`` checked: known jobs, lists of ``host:port``."""
  cluster = value.get("cluster", {})
  if cluster is None:
    cluster = {}
  if not isinstance(cluster, Mapping):
    raise TFConfigError(
        f"TF_CONFIG['cluster']={cluster!r} must be an object mapping job "
        f"names to lists of 'host:port', such as {_EXAMPLE}.")
  for job, addresses in cluster.items():
    if job == "ps":
      raise TFConfigError(
          f"TF_CONFIG names parameter servers (cluster['ps']={addresses!r}); "
          "estlab trains with MultiWorkerMirroredStrategy, which all-reduces "
          "gradients and needs none: remove the 'ps' job (and make its hosts "
          "workers).")
    if job == "master":
      raise TFConfigError(
          f"TF_CONFIG uses the legacy job 'master' ({addresses!r}); name it "
          "'chief' (MultiWorkerMirroredStrategy's name for it).")
    if job not in _JOBS:
      raise TFConfigError(
          f"TF_CONFIG cluster has an unknown job {job!r}; jobs are "
          f"{list(_JOBS)!r}. Rename or remove it. TF_CONFIG={text!r}.")
    if isinstance(addresses, str) or not isinstance(addresses, (list, tuple)):
      raise TFConfigError(
          f"TF_CONFIG['cluster'][{job!r}]={addresses!r} must be a list of "
          f"'host:port' strings, e.g. [\"10.0.0.1:2222\"].")
    for address in addresses:
      host, _, port = address.rpartition(":") if isinstance(address, str) else (
          "", "", "")
      if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TFConfigError(
            f"TF_CONFIG['cluster'][{job!r}] has the address {address!r}; "
            "each must be 'host:port' with a port in 1..65535, e.g. "
            "\"10.0.0.1:2222\".")
  if len(cluster.get(CHIEF, ())) > 1:
    raise TFConfigError(
        f"TF_CONFIG cluster has {len(cluster[CHIEF])} chiefs "
        f"{list(cluster[CHIEF])!r}; there must be at most one: make the others "
        "workers.")
  if len(cluster.get(EVALUATOR, ())) > 1:
    raise TFConfigError(
        f"TF_CONFIG cluster has {len(cluster[EVALUATOR])} evaluators "
        f"{list(cluster[EVALUATOR])!r}; there must be at most one (as in "
        "tf.estimator): keep one.")
  spec = ClusterSpec(cluster)
  if spec and not (spec.get(CHIEF) or spec.get(WORKER)):
    raise TFConfigError(
        f"TF_CONFIG cluster {spec.as_dict()!r} has no chief: add a "
        "'chief' job with one address (or 'worker' addresses, the first of "
        "which then acts as chief).")
  return spec


def _task(task: Mapping[str, Any], text: Any) -> tuple[str, int]:
  task_type, task_id = task.get("type"), task.get("index")
  if not task_type:
    raise TFConfigError(
        f"TF_CONFIG names a cluster but no task type (task={dict(task)!r}); "
        f"set \"task\": {{\"type\": \"chief\" | \"worker\" | \"evaluator\", "
        f"\"index\": N}}. TF_CONFIG={text!r}.")
  if task_type not in _JOBS:
    fix = ("estlab has no parameter servers" if task_type == "ps" else
           "'master' is now 'chief'" if task_type == "master" else
           f"the task types are {list(_JOBS)!r}")
    raise TFConfigError(f"TF_CONFIG task type {task_type!r} is unknown: {fix}. "
                        f"TF_CONFIG={text!r}.")
  return task_type, _index(task_id, task, text, required=True)


def _index(task_id: Any, task: Mapping[str, Any], text: Any, *,
           required: bool) -> int:
  if task_id is None and not required:
    return 0
  if isinstance(task_id, str) and task_id.strip().isdigit():
    task_id = int(task_id)  # TF reads int(task['index'])
  if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id < 0:
    raise TFConfigError(
        f"TF_CONFIG task index {task_id!r} (task={dict(task)!r}) must be an "
        f"int >= 0, the task's position in its job's address list. "
        f"TF_CONFIG={text!r}.")
  return task_id


def _local(task: Mapping[str, Any], text: Any, model_dir: str | None,
           raw: Mapping[str, Any]) -> TFConfig:
  """No cluster: one local process; TF allows only worker 0 then."""
  task_type = task.get("type") or WORKER
  task_id = _index(task.get("index"), task, text, required=False)
  if task_type != WORKER or task_id != 0:
    raise TFConfigError(
        f"TF_CONFIG has no 'cluster' but task {dict(task)!r}: without a "
        "cluster the only task is worker 0 (TF's local mode). Add the "
        f"'cluster' of every task, e.g. {_EXAMPLE}.")
  return TFConfig(ClusterSpec(), WORKER, 0, 0, 1, None, model_dir, raw)
