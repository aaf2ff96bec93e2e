"""Sequence columns: host padding with lengths, SequenceFeatures as TF's."""
import jax
import numpy as np
import pytest

from estlab import feature_column as fc


def _tokens():
  return fc.sequence_categorical_column_with_vocabulary_list('tok', ['a', 'b'])


def test_ragged_lists_padded_to_power_of_two_with_lengths():
  col = _tokens()
  for raw in ([['a', 'b', 'a'], ['b']],
              np.array([['a', 'b', 'a'], ['b', '', '']], object)):
    out = fc.encode([fc.indicator_column(col)], {'tok': raw})['tok']
    assert out['ids'].tolist() == [[0, 1, 0, -1], [1, -1, -1, -1]]
    assert out['sequence_length'].tolist() == [3, 1]


def test_padded_length_buckets():
  assert [fc.sequence.padded_length(n) for n in (1, 2, 3, 5, 8, 9)] == [
      1, 2, 4, 8, 8, 16]
  col = _tokens()
  widths = {fc.encode([col], {'tok': [['a'] * n]})['tok']['ids'].shape[1]
            for n in (5, 6, 7, 8)}
  assert widths == {8}


def test_missing_step_inside_a_sequence_counts_toward_its_length():
  # As TF: the length is one past the last present value; OOV steps count.
  out = fc.encode([_tokens()], {'tok': [['a', '', 'z'], ['b', '']]})['tok']
  assert out['sequence_length'].tolist() == [3, 1]
  assert out['ids'][0].tolist()[:3] == [0, -1, -1]


def test_sequence_features_match_tf_2_15():
  # TF 2.15's SequenceFeatures([embedding(tok, 3), numeric x (2,),
  # indicator(tok)]) on tok=[['a','z'],['b','a','b']], x=[[0..3],[4..9]]:
  # last four columns per step (indicator, x), lengths [2, 3].
  tok = _tokens()
  cols = [fc.embedding_column(tok, 3), fc.sequence_numeric_column('x', shape=2),
          fc.indicator_column(tok)]
  batch = fc.encode(cols, {'tok': [['a', 'z'], ['b', 'a', 'b']],
                           'x': [[0., 1, 2, 3], [4., 5, 6, 7, 8, 9]]})
  layer = fc.SequenceFeatures(cols)
  params = layer.init(jax.random.PRNGKey(0), batch)
  out, lengths = layer.apply(params, batch)
  assert out.shape == (2, 4, 7)
  assert lengths.tolist() == [2, 3]
  tf_tail = [[[1, 0, 0, 1], [0, 0, 2, 3], [0, 0, 0, 0]],
             [[0, 1, 4, 5], [1, 0, 6, 7], [0, 1, 8, 9]]]
  np.testing.assert_array_equal(np.asarray(out)[:, :3, -4:], tf_tail)
  np.testing.assert_array_equal(np.asarray(out)[:, 3], 0)  # padding
  assert list(params['params']) == ['tok_embedding']
  # steps without an id (OOV 'z', padding) embed as zeros
  np.testing.assert_array_equal(np.asarray(out)[0, 1:, :3], 0)


def test_numeric_sequence_default_and_normalizer():
  col = fc.sequence_numeric_column('x', default_value=-1.,
                                   normalizer_fn=lambda v: v * 10)
  batch = fc.encode([col], {'x': np.array([[1., np.nan, 3.], [2., np.nan, np.nan]])})
  assert batch['x']['sequence_length'].tolist() == [3, 1]
  assert batch['x']['values'][:, :, 0].tolist() == [[1, -1, 3, -1], [2, -1, -1, -1]]
  out, _ = fc.SequenceFeatures([col]).apply({}, batch)
  assert np.asarray(out)[0, :, 0].tolist() == [10, -10, 30, -10]


def test_other_sequence_categorical_columns(tmp_path):
  vocab = tmp_path / 'vocab.txt'
  vocab.write_text('a\nb\n')
  file_col = fc.sequence_categorical_column_with_vocabulary_file(
      'tok', str(vocab), num_oov_buckets=1)
  assert fc.encode([file_col], {'tok': [['b', 'q']]})['tok']['ids'].tolist() == [[1, 2]]
  ident = fc.sequence_categorical_column_with_identity('n', 5, default_value=0)
  assert fc.encode([ident], {'n': [[4, 7, 1]]})['n']['ids'].tolist() == [[4, 0, 1, -1]]
  hashed = fc.sequence_categorical_column_with_hash_bucket('h', 50)
  ids = fc.encode([hashed], {'h': [['x', 'y', 'x']]})['h']['ids'][0]
  assert ids[0] == ids[2] and 0 <= ids[1] < 50
  for col in (file_col, ident, hashed, fc.sequence_numeric_column('x', (2,))):
    assert fc.from_spec(col.spec()) == col
  assert fc.make_parse_example_spec([ident]) == {'n': fc.VarLenFeature('int64')}


def test_dense_features_reject_sequence_columns():
  emb = fc.embedding_column(_tokens(), 2)
  batch = fc.encode([emb], {'tok': [['a']]})
  with pytest.raises(ValueError, match='SequenceFeatures'):
    fc.DenseFeatures([emb]).init(jax.random.PRNGKey(0), batch)
  with pytest.raises(ValueError, match='sequence columns'):
    fc.SequenceFeatures([fc.numeric_column('y')]).init(
        jax.random.PRNGKey(0), {'y': np.ones((1, 1))})


def test_sequence_columns_of_different_lengths_are_an_error():
  cols = [_tokens(), fc.sequence_numeric_column('x')]
  with pytest.raises(ValueError, match="row 1.*2 and 1"):
    fc.encode(cols, {'tok': [['a'], ['a', 'b']], 'x': [[1.], [2.]]})
