"""``tf.compat.v1.losses.Reduction``: the names TF 1's premades take as
``loss_reduction``, and their estlab head equivalents.

TF 1's premade estimators default to ``Reduction.SUM`` ('weighted_sum'): the
training loss is the weighted sum over the batch, not its mean.
"""
from __future__ import annotations

from typing import Any

from estlab import heads

__all__ = ["Reduction", "head_reduction"]


class Reduction:
  """TF 1's loss reductions (``tf.compat.v1.losses.Reduction``), same strings."""

  NONE = "none"
  SUM = "weighted_sum"
  SUM_OVER_BATCH_SIZE = "weighted_sum_over_batch_size"
  MEAN = "weighted_mean"
  SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"
  SUM_OVER_NONZERO_WEIGHTS = SUM_BY_NONZERO_WEIGHTS

  @classmethod
  def all(cls) -> tuple[str, ...]:
    return (cls.NONE, cls.SUM, cls.SUM_OVER_BATCH_SIZE, cls.MEAN,
            cls.SUM_BY_NONZERO_WEIGHTS)


_TO_HEAD = {
    Reduction.SUM: heads.SUM,
    Reduction.SUM_OVER_BATCH_SIZE: heads.SUM_OVER_BATCH_SIZE,
    # estlab's (TF 2's) names are accepted too.
    heads.SUM: heads.SUM,
    heads.SUM_OVER_BATCH_SIZE: heads.SUM_OVER_BATCH_SIZE,
}


def head_reduction(loss_reduction: Any) -> str:
  """The ``estlab.heads`` reduction for a TF 1 ``loss_reduction``.

  Raises:
    ValueError: for ``NONE`` (a premade's loss must be a scalar, as in TF) and
      for ``MEAN`` / ``SUM_BY_NONZERO_WEIGHTS``, which estlab's heads do not
      implement (divide by the weights' sum or by the count of non-zero
      weights); the message names the supported ones.
  """
  if loss_reduction in _TO_HEAD:
    return _TO_HEAD[loss_reduction]
  raise ValueError(
      f"loss_reduction={loss_reduction!r} is not supported by "
      "estlab.compat.v1: use Reduction.SUM ('weighted_sum', TF 1's default) "
      "or Reduction.SUM_OVER_BATCH_SIZE ('weighted_sum_over_batch_size'). "
      "MEAN and SUM_BY_NONZERO_WEIGHTS (a division by the weights) are not "
      "implemented by estlab's heads; NONE gives no scalar loss.")
