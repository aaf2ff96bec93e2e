"""MultiHead: several named heads on one model, losses summed with weights."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from estlab import metrics as metrics_lib
from estlab.heads._base import Head, _regularization

__all__ = ["MultiHead"]


class MultiHead(Head):
  """Merges named heads, as ``tf.estimator.MultiHead``.

  * logits: a dict keyed by head name, or one array ``[B, sum of
    logits_dimension]`` split in head order;
  * labels: a dict keyed by head name (``transform_labels`` encodes each);
  * loss: ``sum(head_weight * head loss) + regularization``;
  * metrics: each head's own keys (already suffixed ``/<head name>``), plus
    ``loss/<head name>`` and ``regularization_loss/<joined names>``;
  * predictions: keyed by ``(head name, key)`` tuples, as TF's, e.g.
    ``('kind', 'probabilities')`` (also in ``predict_keys``); export
    signatures name them ``'<head name>/<key>'``, as TF's do.

  Args:
    heads: heads, each with a distinct ``name``; the first is served first.
    head_weights: one float per head; None weights all heads 1.

  Example:
    >>> head = MultiHead([MultiClassHead(3, name='kind'),
    ...                   RegressionHead(name='size')], head_weights=[1., .5])
    >>> head.logits_dimension
    4
  """

  def __init__(self, heads: Sequence[Head], head_weights: Sequence[float] | None = None):
    if not heads:
      raise ValueError(f"MultiHead(heads={heads!r}) needs at least one head, e.g."
                       " MultiHead([BinaryClassHead(name='a'), ...]).")
    names = [h.name for h in heads]
    if None in names:
      raise ValueError(f"MultiHead: every head needs a name; "
                       f"{heads[names.index(None)]!r} has none. Pass name=... "
                       "to each head.")
    if len(set(names)) != len(names):
      raise ValueError(f"MultiHead: head names {names!r} repeat; give each head "
                       "a distinct name.")
    if head_weights and len(head_weights) != len(heads):
      raise ValueError(f"MultiHead: {len(heads)} heads but head_weights="
                       f"{list(head_weights)!r}; give one weight per head.")
    self._heads = tuple(heads)
    self._head_weights = tuple(head_weights) if head_weights else ()

  @property
  def name(self) -> str:
    return "_".join(h.name for h in self._heads)

  @property
  def heads(self) -> tuple[Head, ...]:
    return self._heads

  @property
  def logits_dimension(self) -> int:
    return sum(h.logits_dimension for h in self._heads)

  @property
  def loss_reduction(self) -> str:
    reductions = [h.loss_reduction for h in self._heads]
    if len(set(reductions)) > 1:
      raise ValueError(f"MultiHead: the heads' loss_reduction differ "
                       f"{reductions!r}; give all heads the same one.")
    return reductions[0]

  def __repr__(self) -> str:
    return f"MultiHead({[h.name for h in self._heads]!r})"

  def _by_head(self, values: Any, what: str) -> Mapping:
    if not isinstance(values, Mapping):
      raise ValueError(f"{self!r}: {what} must be a dict keyed by head name "
                       f"{[h.name for h in self._heads]!r}, got "
                       f"{type(values).__name__}.")
    missing = [h.name for h in self._heads if h.name not in values]
    if missing:
      raise ValueError(f"{self!r}: {what} has no values for head(s) {missing!r}"
                       f" (keys given: {sorted(values)!r}).")
    return values

  def _split_logits(self, logits: Any) -> Mapping:
    if isinstance(logits, Mapping):
      return self._by_head(logits, "logits")
    logits = jnp.asarray(logits)
    dims = [h.logits_dimension for h in self._heads]
    if logits.ndim < 2 or logits.shape[-1] != sum(dims):
      raise ValueError(
          f"{self!r}: cannot split logits of shape {logits.shape!r} among heads "
          f"with logits dimensions {dims!r}; the last axis must be {sum(dims)} "
          "(nn.Dense(head.logits_dimension)), or pass a dict by head name.")
    parts = jnp.split(logits, np.cumsum(dims)[:-1].tolist(), axis=-1)
    return {h.name: p for h, p in zip(self._heads, parts)}

  def transform_labels(self, labels: Any) -> dict | None:
    """Each head's ``transform_labels`` on ``labels[head.name]``."""
    if labels is None:
      return None
    labels = self._by_head(labels, "labels")
    return {h.name: h.transform_labels(labels[h.name]) for h in self._heads}

  def postprocess_predictions(self, predictions: Mapping[Any, Any]) -> dict:
    """Each head's ``postprocess_predictions`` on its ``(name, key)`` keys."""
    out = dict(predictions)
    for h in self._heads:
      own = _own(predictions, h.name)
      out.update({(h.name, k): v
                  for k, v in h.postprocess_predictions(own).items()})
    return out

  def _head_losses(self, labels, logits, features, mode=None) -> list:
    logits = self._split_logits(logits)
    labels = self._by_head(labels, "labels") if labels is not None else None
    if labels is None:
      return [h.loss(None, logits[h.name], features, mode) for h in self._heads]
    return [h.loss(labels[h.name], logits[h.name], features, mode)
            for h in self._heads]

  def loss(self, labels, logits, features=None, mode=None,
           regularization_losses=None):
    """``sum(head_weights * head losses)`` plus the regularization losses."""
    losses = self._head_losses(labels, logits, features, mode)
    weights = self._head_weights or (1.0,) * len(losses)
    total = sum(w * l for w, l in zip(weights, losses))
    return total + _regularization(regularization_losses)

  def predictions(self, logits, keys=None):
    """Every head's predictions, keyed ``(head name, key)`` as in TF.

    Args:
      logits: a dict keyed by head name, or one array split in head order.
      keys: None for all, or ``(head name, key)`` pairs to compute.
    """
    logits = self._split_logits(logits)
    if keys is not None:
      names = [h.name for h in self._heads]
      wrong = [k for k in keys if not (isinstance(k, tuple) and len(k) == 2
                                       and k[0] in names)]
      if wrong:
        raise ValueError(
            f"{self!r}: prediction keys {wrong!r} are not (head name, key) "
            f"pairs of heads {names!r}; MultiHead keys its predictions as TF "
            f"does, e.g. ({names[0]!r}, 'logits').")
    out = {}
    for h in self._heads:
      own = None if keys is None else [k for name, k in keys if name == h.name]
      if own == []:
        continue
      out.update({(h.name, k): v for k, v in
                  h.predictions(logits[h.name], own).items()})
    return out

  def _export_outputs(self, predictions):
    """TF's: the merged predictions as ``serving_default`` and ``predict``,
    plus each head's outputs keyed ``<head name>/<signature>`` (its default
    keyed by the head's name). Signature outputs are named by strings, so
    a prediction ``(head name, key)`` is ``'<head name>/<key>'`` there."""
    outputs = super()._export_outputs({f"{name}/{key}": v for (name, key), v
                                       in predictions.items()})
    for h in self._heads:
      own = _own(predictions, h.name)
      for key, output in h._export_outputs(own).items():  # pylint: disable=protected-access
        outputs[h.name if key == "serving_default" else f"{h.name}/{key}"] = output
    return outputs

  def _batch_metrics(self, features, logits, labels, regularization_losses):
    logits = self._split_logits(logits)
    labels = self._by_head(labels, "labels")
    m = {}
    if regularization_losses is not None:
      m[f"regularization_loss/{self.name}"] = metrics_lib.mean(
          _regularization(regularization_losses))
    for h in self._heads:
      m[f"loss/{h.name}"] = metrics_lib.mean(
          h.loss(labels[h.name], logits[h.name], features))
      m.update(h._batch_metrics(features, logits[h.name], labels[h.name], None))  # pylint: disable=protected-access
    return m

  def _weight_keys(self):
    return sorted({k for h in self._heads for k in h._weight_keys()})  # pylint: disable=protected-access

  def _label_struct(self):
    return {h.name: h._label_struct() for h in self._heads}  # pylint: disable=protected-access

  def _summaries(self, features, logits, labels, loss, regularization_losses):
    del loss
    losses = self._head_losses(labels, logits, features)
    summaries = {f"loss/{h.name}": l for h, l in zip(self._heads, losses)}
    if regularization_losses is not None:
      summaries["regularization_loss"] = _regularization(regularization_losses)
    return summaries

  def _processed_labels(self, labels, logits):  # per head, not merged
    raise NotImplementedError

  def _default_loss(self, labels, logits):  # per head, not merged
    raise NotImplementedError


def _own(predictions: Mapping[Any, Any], name: str) -> dict:
  """The predictions of head ``name``, by their own keys."""
  return {k[1]: v for k, v in predictions.items()
          if isinstance(k, tuple) and len(k) == 2 and k[0] == name}
