"""Checkpoint steps of a local model_dir, from its listing (no Orbax import).

Kept apart from ``estlab.checkpoint._orbax`` (which imports Orbax, ~0.6 s)
so the Estimator can answer "is there a checkpoint, and which is newest" on
every train call without it (``estlab.checkpoint`` loads its names lazily, so
importing this module loads no Orbax).
"""
from __future__ import annotations

import os

__all__ = ["local_steps"]


def local_steps(directory: str) -> list[int] | None:
  """Steps under a local ``directory`` from its listing alone, ascending.

  On a local filesystem Orbax writes ``<step>.orbax-checkpoint-tmp-...``
  and renames it to ``<step>`` when complete, so the digit-only names are
  exactly the finished steps ``CheckpointManager.reload`` would find, for
  ~0.1 ms instead of ~30 ms (it reads every step's metadata). None for a
  remote directory (``gs://...``: no atomic rename; ask Orbax).
  """
  if "://" in directory:
    return None
  try:
    names = os.listdir(directory)
  except FileNotFoundError:
    return []
  return sorted(int(name) for name in names if name.isdigit())
