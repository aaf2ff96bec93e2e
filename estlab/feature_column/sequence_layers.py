"""Device side of sequence columns: the Flax ``SequenceFeatures`` layer.

TF's ``tf.keras.experimental.SequenceFeatures`` as a linen module, called
inside a model_fn (under ``jit``) on the output of ``encode``: per column
``[B, T, d]`` (sequence numeric values after ``normalizer_fn``, one-hot
indicators, embedding rows; steps without an id give zeros), concatenated
by name along the last axis, and the ``[B]`` sequence lengths. Embedding
tables are parameters named as TF's (``<column>_embedding/
embedding_weights``).

Example:
  >>> import jax, numpy as np
  >>> from estlab import feature_column as fc
  >>> tok = fc.sequence_categorical_column_with_identity('tok', 5)
  >>> cols = [fc.embedding_column(tok, 3)]
  >>> batch = fc.encode(cols, {'tok': np.array([[1, 2, 4], [3]], object)})
  >>> layer = fc.SequenceFeatures(cols)
  >>> inputs, lengths = layer.apply(layer.init(jax.random.PRNGKey(0), batch), batch)
  >>> inputs.shape, lengths.tolist()
  ((2, 4, 3), [3, 1])
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from estlab.feature_column import _base, dense, layers, sequence

__all__ = ["SequenceFeatures"]


def _encoded(features: Mapping, column: Any, part: str) -> jax.Array:
  value = layers._encoded(features, column, column.name)  # pylint: disable=protected-access
  if not isinstance(value, Mapping) or part not in value:
    raise TypeError(
        f"features[{column.name!r}] must be {{{part!r}: ..., "
        f"'sequence_length': ...}} from estlab.feature_column.encode, got "
        f"{type(value).__name__}. Encode the batch on the host first.")
  return jnp.asarray(value[part])


def _step_tensor(module: nn.Module, column: Any, features: Mapping,
                 variables: dict, shared: dict) -> tuple[jax.Array, jax.Array]:
  """``([B, T, d] float32, [B] lengths)`` of one sequence column."""
  if isinstance(column, sequence.SequenceNumericColumn):
    values = _encoded(features, column, "values")
    x = values.reshape(values.shape[:2] + tuple(column.shape))
    if column.normalizer_fn is not None:
      x = column.normalizer_fn(x)
    x = jnp.asarray(x, jnp.float32).reshape(values.shape)
    source = column
  else:
    source = column.categorical_column
    ids = _encoded(features, source, "ids")
    if isinstance(column, dense.IndicatorColumn):
      x = jax.nn.one_hot(ids, source.num_buckets, dtype=jnp.float32)
    else:
      table = layers._table(module, column, variables, shared)  # pylint: disable=protected-access
      rows = jnp.take(table, jnp.clip(ids, 0, table.shape[0] - 1), axis=0)
      if column.max_norm is not None:
        rows = layers._clip_by_norm(rows, column.max_norm)  # pylint: disable=protected-access
      x = jnp.where((ids >= 0)[..., None], rows, 0.0)
  lengths = _encoded(features, source, sequence.SEQUENCE_LENGTH)
  return x, lengths.astype(jnp.int32)


class SequenceFeatures(nn.Module):
  """``[B, T, D]`` sequence input and ``[B]`` lengths from sequence columns.

  As ``tf.keras.experimental.SequenceFeatures``: columns ordered by name
  and concatenated per step. Call it on ``encode(feature_columns, raw)``.

  Attributes:
    feature_columns: ``sequence_numeric_column``s and ``embedding_column`` /
      ``indicator_column`` / ``shared_embeddings`` over
      ``sequence_categorical_column_with_*``.
    trainable: False stops gradients to every table of this layer.
  """

  feature_columns: Sequence[_base.FeatureColumn]
  trainable: bool = True

  @nn.compact
  def __call__(self, features: Mapping[str, Any]) -> tuple[jax.Array, jax.Array]:
    columns = _base.normalize_feature_columns(self.feature_columns)
    for column in columns:
      if not (sequence.is_sequence(column)
              and isinstance(column, _base.DenseColumn)):
        raise ValueError(
            f"SequenceFeatures takes sequence columns: sequence_numeric_column"
            f" or embedding_column/indicator_column over a sequence_"
            f"categorical_column_with_*; got {column.name!r} "
            f"({type(column).__name__}). Put other columns in "
            "context_feature_columns (or DenseFeatures).")
    shared: dict = {}
    outputs, lengths = [], None
    for column in columns:
      specs = layers._embedding_specs(column)  # pylint: disable=protected-access
      variables = layers._Variables(name=column.name)(specs) if specs else {}  # pylint: disable=protected-access
      x, length = _step_tensor(self, column, features, variables, shared)
      outputs.append(x)
      lengths = length if lengths is None else jnp.maximum(lengths, length)
    steps = max(x.shape[1] for x in outputs)
    outputs = [jnp.pad(x, ((0, 0), (0, steps - x.shape[1]), (0, 0)))
               for x in outputs]
    return jnp.concatenate(outputs, axis=-1), lengths
