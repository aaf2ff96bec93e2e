"""Checkpoint save/restore cost of estlab against plain numpy; JSON lines.

A ~100 MB float32 model (``x [B, W] -> Dense(W) -> Dense(1)``, W=5000: 25M
parameters) is trained for one step by an ``estlab.Estimator``. Then:

* ``checkpoint_save``: a synchronous ``estlab.checkpoint.Checkpointer`` save
  and restore of the trained ``TrainState`` (what ``Estimator`` does, Orbax
  underneath), against ``np.savez`` / ``np.load`` of the same leaves in the
  same directory (estlab's save includes the checksums of its files,
  ``checksum_s`` alone, ``checksum_share_of_save`` of the save; ``verify_s``
  checks them, as a restore does once per step). Orbax (TensorStore's file
  driver) fsyncs what it writes (strace shows dozens of fsync calls per
  save), so the numpy save fsyncs its file too (``numpy_fsync``). The saves
  alternate, estlab then numpy, ``--repeats`` rounds after one untimed
  warm-up of each, each output removed before the next save: ``ratio`` is
  the ratio of the medians, ``ratio_of_mins`` of the fastest saves,
  ``per_save_ratios`` each round's (the VM's disk alone varies 3x from one
  second to the next; ``--dir /dev/shm`` takes the disk out and leaves the
  CPU and memory cost). ``load_avg_1m``: before and after the saves. Both
  restores end with the arrays on the device (medians, after a warm-up).
* ``async_checkpoint_stall``: train steps/s with ``async_checkpoints=True``
  and a save every ``--every`` steps, against the same run with no periodic
  saves (and, for contrast, with synchronous saves). Every run ends with the
  Estimator's final save, waited for, as ``train`` always does. The
  reference (``NumpyWriter``): the run without periodic saves while a numpy
  thread writes the same bytes at the same cadence, the least a background
  writer costs; ``ratio_async_over_numpy_thread`` near 1 means estlab's
  async saves add nothing to what writing those bytes costs this machine.

* ``every_step_save`` (``--case every_step``): a small MNIST-size
  ``DNNClassifier`` (784 -> 256 -> 128 -> 10, Adagrad, batch 32) trained
  ``--steps`` steps with ``save_checkpoints_steps=1`` (TF's checkpoint_saver
  guide) against the same run with no periodic saves, rounds alternating;
  ``ms_per_save``: the extra training time per save asked for, the final
  save waited for included (each run ends with ``train``'s wait);
  ``blocked_ms_per_save``: the time the training loop spent inside
  ``ModelDir.save`` and ``ModelDir.wait_until_finished`` per save asked for
  (robust to a loaded machine, where the whole-run difference is noise).

The trained state is read from ``Estimator._session.state`` (there is no public
getter for the live state; ``Checkpointer`` is the public API timed here).

Usage:
  python bench/checkpoint_io.py [--width 5000] [--repeats 5]
      [--steps 100] [--every 20] [--batch 8] [--rounds 3]
      [--case all|save|every_step] [--dir DIR]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import estlab
from estlab.checkpoint import Checkpointer, _integrity


def model_fn(features, labels, mode):
  """A wide two-layer regressor; SGD keeps the optimizer state empty."""
  width = features["x"].shape[-1]
  y = nn.Dense(1)(nn.Dense(width)(features["x"]))[:, 0]
  loss = jnp.mean((y - labels) ** 2)
  return estlab.EstimatorSpec(mode, predictions={"y": y}, loss=loss,
                              train_op=optax.sgd(1e-4))


def input_fn(width: int, batch: int) -> Callable:
  rng = np.random.default_rng(0)
  x = rng.standard_normal([batch, width], dtype=np.float32)
  y = rng.standard_normal([batch], dtype=np.float32)
  return lambda: itertools.repeat(({"x": x}, y))


def estimator(model_dir: str, **config) -> estlab.Estimator:
  config = dict(save_checkpoints_steps=10**9, log_step_count_steps=10**9,
                progress_bar=False, tf_random_seed=0) | config
  return estlab.Estimator(model_fn, model_dir=model_dir,
                          config=estlab.RunConfig(**config))


def median_time(fn: Callable[[], object], repeats: int) -> float:
  """Median seconds of ``fn()`` over ``repeats`` runs, after one warm-up."""
  fn()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def estlab_save(state, root: str) -> Callable[[], str]:
  """A save into a fresh directory per call (a saved step is never rewritten);
  returns the directory."""
  count = itertools.count()

  def save():
    directory = os.path.join(root, f"estlab_{next(count)}")
    with Checkpointer(directory, async_save=False) as ckpt:
      ckpt.save(state)
      ckpt.wait_until_finished()
    return directory
  return save


def numpy_save(state, path: str) -> Callable[[], str]:
  """A save into a fresh file per call, as each checkpoint is a new one;
  returns the file."""
  count = itertools.count()

  def save():
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(state)]
    file = f"{path}.{next(count)}.npz"
    with open(file, "wb") as f:
      np.savez(f, *leaves)
      f.flush()
      os.fsync(f.fileno())
    return file
  return save


def _remove(path: str) -> None:
  if os.path.isdir(path):
    shutil.rmtree(path)
  else:
    os.remove(path)


def alternating_times(saves: dict[str, Callable[[], str]], repeats: int
                      ) -> dict[str, list[float]]:
  """Seconds of each save, ``repeats`` rounds of one save each in turn
  (after one untimed warm-up of each), each save's output removed before
  the next: a shared VM's disk and load drift by the second, and a disk
  filling with one side's files would time the other side on another disk."""
  for save in saves.values():
    _remove(save())
  times: dict[str, list[float]] = {name: [] for name in saves}
  for _ in range(repeats):
    for name, save in saves.items():
      t0 = time.perf_counter()
      out = save()
      times[name].append(time.perf_counter() - t0)
      _remove(out)
  return times


def numpy_load(path: str) -> Callable[[], None]:
  def load():
    with np.load(path) as saved:
      jax.block_until_ready(jax.device_put([saved[k] for k in saved.files]))
  return load


def bench_save(width: int, batch: int, repeats: int, root: str) -> dict:
  """Times sync Checkpointer save/restore against np.savez/np.load."""
  est = estimator(os.path.join(root, "model"))
  est.train(input_fn(width, batch), steps=1)
  state = est._session.state  # pylint: disable=protected-access
  n_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
  param_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(state.params))
  path = os.path.join(root, "state")
  load_before = os.getloadavg()
  times = alternating_times({"estlab": estlab_save(state, root),
                             "numpy": numpy_save(state, path)}, repeats)
  load_after = os.getloadavg()
  t_save, t_np_save = (statistics.median(times[k]) for k in ("estlab", "numpy"))
  min_save, min_np_save = (min(times[k]) for k in ("estlab", "numpy"))
  save = estlab_save(state, os.path.join(root, "kept"))
  directory = save()
  abstract = jax.eval_shape(lambda s: s, state)

  def restore():
    with Checkpointer(directory) as ckpt:
      jax.block_until_ready(ckpt.restore(abstract))
  t_restore = median_time(restore, repeats)
  # The save above includes the checksums (estlab_checksums.json, written
  # before the commit); alone, and the check a restore runs once per step:
  step_dir = Checkpointer(directory).path(int(state.step))
  t_checksum = median_time(lambda: _integrity.write_manifest(step_dir), repeats)
  t_verify = median_time(lambda: _integrity.verify(step_dir), repeats)
  file = numpy_save(state, path)()
  t_np_load = median_time(numpy_load(file), repeats)
  return {"bench": "checkpoint_save", "param_mb": round(param_bytes / 2**20, 1),
          "saved_mb": round(n_bytes / 2**20, 1), "repeats": repeats,
          "dir": root,
          "estlab_save_s": round(t_save, 3), "numpy_save_s": round(t_np_save, 3),
          "ratio": round(t_save / t_np_save, 2),
          "estlab_save_min_s": round(min_save, 3),
          "numpy_save_min_s": round(min_np_save, 3),
          "ratio_of_mins": round(min_save / min_np_save, 2),
          "per_save_ratios": sorted(round(e / n, 2) for e, n in zip(
              times["estlab"], times["numpy"])),
          "estlab_restore_s": round(t_restore, 3),
          "numpy_load_s": round(t_np_load, 3),
          "restore_ratio": round(t_restore / t_np_load, 2),
          "checksum_s": round(t_checksum, 3), "verify_s": round(t_verify, 3),
          "checksum_share_of_save": round(t_checksum / t_save, 2),
          "load_avg_1m": [round(load_before[0], 1), round(load_after[0], 1)],
          "cpus": os.cpu_count(),
          "numpy_fsync": True, "numpy_load_includes_device_put": True}


class NumpyWriter(estlab.SessionRunHook):
  """The reference for async saves: every ``every`` steps the training
  thread copies ``n_bytes`` of host memory (the snapshot any async save takes
  first) and a thread writes them with ``np.save`` and fsync. What this costs
  a training run is the least any background writer of those bytes at that
  cadence costs on this machine (the CPU and memory bandwidth it shares)."""

  def __init__(self, n_bytes: int, every: int, directory: str):
    self._source = np.ones(n_bytes // 4, np.float32)
    self._snapshot = np.zeros_like(self._source)
    self._snapshot[:] = 0  # touched: no page faults while training
    self._every, self._directory = every, directory
    self._thread: threading.Thread | None = None
    self.blocked: list[float] = []

  def _write(self, data: np.ndarray, step: int) -> None:
    with open(os.path.join(self._directory, f"{step}.npy"), "wb") as f:
      np.save(f, data)
      f.flush()
      os.fsync(f.fileno())

  def after_run(self, run_context, run_values):
    if run_context.global_step % self._every:
      return
    t = time.perf_counter()
    self._join()  # as Orbax, one write in flight at a time
    np.copyto(self._snapshot, self._source)
    self._thread = threading.Thread(
        target=self._write, args=(self._snapshot, run_context.global_step))
    self._thread.start()
    self.blocked.append(time.perf_counter() - t)

  def _join(self) -> None:
    if self._thread is not None:
      self._thread.join()

  def end(self, session=None):
    self._join()


def steps_per_s(root: str, name: str, width: int, batch: int, steps: int,
               hooks: tuple = (), **config) -> tuple[float, float]:
  """Train steps/s of a fresh Estimator, after a compiling 2-step call, and
  the median seconds the training loop spent blocked in a periodic save (the
  stall; the rest of any slowdown is the background write sharing the CPU)."""
  est = estimator(os.path.join(root, name), **config)
  data = input_fn(width, batch)
  est.train(data, steps=2)
  blocked = []
  save = Checkpointer.save

  def timed_save(self, *args, **kwargs):
    t = time.perf_counter()
    try:
      return save(self, *args, **kwargs)
    finally:
      blocked.append(time.perf_counter() - t)
  Checkpointer.save = timed_save
  try:
    t0 = time.perf_counter()
    est.train(data, steps=steps, hooks=list(hooks))
    seconds = time.perf_counter() - t0
  finally:
    Checkpointer.save = save
  periodic = blocked[:-1]  # the last is train's final save, not periodic
  return steps / seconds, (statistics.median(periodic) if periodic else 0.0)


def bench_stall(width: int, batch: int, steps: int, every: int, root: str,
                rounds: int = 3) -> dict:
  """Steps/s with async saves every ``every`` steps vs none, vs a numpy
  thread writing the same bytes, vs sync saves: medians of ``rounds`` rounds,
  the variants alternating within each (this VM drifts by minutes)."""
  n_bytes = 4 * (width * width + 2 * width + 1)  # the params; SGD: no slots
  runs: dict[str, list] = {"none": [], "async": [], "numpy": [], "sync": []}
  blocked: dict[str, list] = {name: [] for name in runs}
  for index in range(rounds):
    for name in runs:
      directory = os.path.join(root, f"{name}_{index}")
      hooks, config = (), {}
      if name == "numpy":
        os.makedirs(directory + "_writer")
        writer = NumpyWriter(n_bytes, every, directory + "_writer")
        hooks = (writer,)
      elif name != "none":
        config = dict(save_checkpoints_steps=every,
                      async_checkpoints=name == "async")
      rate, block = steps_per_s(root, os.path.basename(directory), width,
                                batch, steps, hooks=hooks, **config)
      runs[name].append(rate)
      blocked[name].append(statistics.median(writer.blocked)
                           if name == "numpy" else block)
      shutil.rmtree(directory, ignore_errors=True)
      shutil.rmtree(directory + "_writer", ignore_errors=True)
  rate = {name: statistics.median(r) for name, r in runs.items()}
  return {"bench": "async_checkpoint_stall", "width": width, "batch": batch,
          "steps": steps, "save_every_steps": every,
          "periodic_saves": steps // every, "rounds": rounds,
          "no_checkpoint_steps_per_s": round(rate["none"], 2),
          "async_checkpoint_steps_per_s": round(rate["async"], 2),
          "ratio_async_over_none": round(rate["async"] / rate["none"], 3),
          "sync_checkpoint_steps_per_s": round(rate["sync"], 2),
          "ratio_sync_over_none": round(rate["sync"] / rate["none"], 3),
          "numpy_thread_steps_per_s": round(rate["numpy"], 2),
          "ratio_numpy_thread_over_none": round(rate["numpy"] / rate["none"], 3),
          "ratio_async_over_numpy_thread": round(rate["async"] / rate["numpy"], 3),
          "per_round_steps_per_s": {k: [round(x, 2) for x in v]
                                    for k, v in runs.items()},
          "numpy_thread_blocks_s": round(statistics.median(blocked["numpy"]), 3),
          "async_save_blocks_s": round(statistics.median(blocked["async"]), 3),
          "sync_save_blocks_s": round(statistics.median(blocked["sync"]), 3)}


def bench_every_step(steps: int, rounds: int, root: str) -> dict:
  """Training seconds of a small DNN saving every step vs never (medians of
  ``rounds`` alternating rounds), after a compiling 5-step call each."""
  rng = np.random.default_rng(0)
  x = rng.random((2048, 784), dtype=np.float32)
  y = rng.integers(0, 10, 2048).astype(np.int32)
  data = estlab.inputs.numpy_input_fn({"x": x}, y, batch_size=32,
                                      num_epochs=None, shuffle=False)
  columns = [estlab.feature_column.numeric_column("x", shape=(784,))]
  times: dict[str, list] = {"none": [], "every_step": []}
  blocked: list[float] = []
  from estlab.checkpoint._model_dir import ModelDir  # pylint: disable=g-import-not-at-top
  originals = {name: getattr(ModelDir, name)
               for name in ("save", "wait_until_finished")}

  def timed(method):
    def run(self, *args, **kwargs):
      t = time.perf_counter()
      try:
        return method(self, *args, **kwargs)
      finally:
        blocked.append(time.perf_counter() - t)
    return run
  blocked_per_round = []
  for index in range(rounds):
    for name in times:
      directory = os.path.join(root, f"every_{name}_{index}")
      est = estlab.DNNClassifier(
          hidden_units=[256, 128], feature_columns=columns, n_classes=10,
          model_dir=directory, config=estlab.RunConfig(
              save_checkpoints_steps=1 if name == "every_step" else None,
              save_checkpoints_secs=None, save_summary_steps=10**9,
              log_step_count_steps=10**9, progress_bar=False))
      est.train(data, steps=5)
      blocked.clear()
      for method, original in originals.items():
        setattr(ModelDir, method, timed(original))
      try:
        t0 = time.perf_counter()
        est.train(data, steps=steps)
        times[name].append(time.perf_counter() - t0)
      finally:
        for method, original in originals.items():
          setattr(ModelDir, method, original)
      if name == "every_step":
        blocked_per_round.append(sum(blocked))
      shutil.rmtree(directory, ignore_errors=True)
  none, every = (statistics.median(times[k]) for k in ("none", "every_step"))
  return {"bench": "every_step_save", "steps": steps, "rounds": rounds,
          "no_save_s": round(none, 3), "every_step_s": round(every, 3),
          "ms_per_save": round(1000 * (every - none) / steps, 1),
          "blocked_ms_per_save": round(
              1000 * statistics.median(blocked_per_round) / steps, 1),
          "per_round_s": {k: [round(t, 3) for t in v]
                          for k, v in times.items()}}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--width", type=int, default=5000,
                      help="W: the model has W*W + 2W + 1 float32 parameters")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--repeats", type=int, default=5,
                      help="alternating estlab/numpy saves (and restores)")
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--every", type=int, default=20)
  parser.add_argument("--rounds", type=int, default=3,
                      help="alternating rounds of the stall runs (medians)")
  parser.add_argument("--dir", default=None,
                      help="scratch directory (default: a temporary one)")
  parser.add_argument("--case", default="all",
                      choices=("all", "save", "every_step"),
                      help="save: only checkpoint_save; every_step: only "
                      "the save-every-step case")
  args = parser.parse_args()
  root = tempfile.mkdtemp(prefix="estlab_ckpt_bench_", dir=args.dir)
  try:
    if args.case == "every_step":
      print(json.dumps(bench_every_step(args.steps, args.rounds, root)),
            flush=True)
      return
    print(json.dumps(bench_save(args.width, args.batch, args.repeats, root)),
          flush=True)
    if args.case == "save":
      return
    print(json.dumps(bench_stall(args.width, args.batch, args.steps, args.every,
                                 root, args.rounds)), flush=True)
  finally:
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
  main()
