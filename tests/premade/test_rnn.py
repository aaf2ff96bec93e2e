"""RNN estimators learn what a stateless model cannot: the parity of a count."""
import flax.linen as nn
import numpy as np
import pytest

import estlab
from estlab import feature_column as fc
from estlab import heads


def _parity_data(n, seed, max_len=8):
  """Variable-length 'a'/'b' sequences; label: the count of 'a' is odd."""
  rng = np.random.default_rng(seed)
  seqs = [list(rng.choice(['a', 'b'], rng.integers(1, max_len + 1)))
          for _ in range(n)]
  x = np.empty(n, object)
  x[:] = seqs
  return x, np.array([s.count('a') % 2 for s in seqs])


_TRAIN = _parity_data(512, 0)
_TEST = _parity_data(256, 1)


def _input(data, **kwargs):
  x, y = data
  return estlab.inputs.numpy_input_fn({'tok': x}, y, **kwargs)


def _train_input():
  return _input(_TRAIN, batch_size=32, num_epochs=None, shuffle=True)


def _test_input():
  return _input(_TEST, batch_size=256, shuffle=False)


def _tokens():
  return fc.sequence_categorical_column_with_vocabulary_list('tok', ['a', 'b'])


@pytest.fixture(scope='module')
def linear_accuracy(tmp_path_factory):
  """The bag-of-tokens baseline: a LinearClassifier over token counts."""
  est = estlab.LinearClassifier(
      [fc.categorical_column_with_vocabulary_list('tok', ['a', 'b'])],
      model_dir=str(tmp_path_factory.mktemp('linear')))
  est.train(_train_input(), steps=300)
  return est.evaluate(_test_input())['accuracy']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """``trained(cell_type)``: an RNNClassifier trained on parity (cached)."""
  models = {}

  def get(cell_type):
    if cell_type not in models:
      est = estlab.experimental.RNNClassifier(
          [fc.indicator_column(_tokens())], units=[16], cell_type=cell_type,
          optimizer='Adam', model_dir=str(tmp_path_factory.mktemp(cell_type)))
      est.train(_train_input(), steps=300)
      models[cell_type] = est
    return models[cell_type]
  return get


@pytest.mark.parametrize('cell_type', ['lstm', 'gru'])
def test_rnn_classifier_learns_parity_a_linear_model_cannot(
    cell_type, linear_accuracy, trained):
  est = trained(cell_type)
  accuracy = est.evaluate(_test_input())['accuracy']
  assert accuracy > 0.95
  assert linear_accuracy < 0.65
  assert accuracy - linear_accuracy > 0.3
  predictions = list(est.predict(_input((_TEST[0], None), batch_size=64,
                                        shuffle=False)))
  classes = np.array([int(p['class_ids'][0]) for p in predictions])
  assert (classes == _TEST[1]).mean() == pytest.approx(accuracy, abs=1e-6)


def _lengths_input(max_lengths, rows=8, seed=0):
  """A generator input_fn: batch i has sequences of at most max_lengths[i]."""
  def input_fn():
    rng = np.random.default_rng(seed)
    for longest in max_lengths:
      seqs = [list(rng.choice(['a', 'b'], rng.integers(1, longest + 1)))
              for _ in range(rows - 1)] + [['a'] * longest]
      yield ({'tok': seqs, 'c': rng.normal(size=(rows, 1))},
             np.array([s.count('a') % 2 for s in seqs]))
  return input_fn


def test_one_compile_per_padded_length_bucket(tmp_path):
  est = estlab.experimental.RNNClassifier(
      [fc.embedding_column(_tokens(), 3)],
      context_feature_columns=[fc.numeric_column('c')], units=[4, 4],
      cell_type='lstm', model_dir=str(tmp_path))
  # longest 3, 4 -> 4; 5, 7, 8 -> 8; 9, 16 -> 16: three shapes, eight batches
  est.train(_lengths_input([3, 4, 5, 7, 8, 9, 16, 4]), steps=8)
  assert est.get_variable_value('global_step') == 8
  assert est.train_step_cache_size() == 3
  names = est.get_variable_names()
  assert 'rnn_model/sequence_features/tok_embedding/embedding_weights' in names
  assert any(n.startswith('rnn_model/lstm_cell_1/') for n in names)
  assert 'rnn_model/logits/kernel' in names


def test_masking_ignores_padding_steps(tmp_path):
  """A sequence predicts the same alone as beside a longer one (padded)."""
  est = estlab.experimental.RNNClassifier(
      [fc.indicator_column(_tokens())], units=[4],
      model_dir=str(tmp_path))  # default cell: simple_rnn, as TF
  est.train(lambda: ({'tok': [['a', 'b'], ['b']]}, [1, 0]), steps=2)
  alone = next(est.predict(lambda: {'tok': [['a', 'b']]}))['logits']
  padded = next(est.predict(lambda: {'tok': [['a', 'b'], ['a'] * 13]}))['logits']
  np.testing.assert_allclose(alone, padded, rtol=1e-5, atol=1e-6)
  assert any('simple_rnn_cell' in n for n in est.get_variable_names())


def test_rnn_cell_fn_and_argument_errors(tmp_path):
  est = estlab.experimental.RNNClassifier(
      [fc.indicator_column(_tokens())], model_dir=str(tmp_path),
      rnn_cell_fn=lambda: [nn.GRUCell(3, name='first'), nn.GRUCell(2)])
  est.train(lambda: ({'tok': [['a'], ['b', 'a']]}, [1, 0]), steps=1)
  assert est.get_variable_value('rnn_model/first/in/kernel').shape == (2, 3)
  col = fc.indicator_column(_tokens())
  with pytest.raises(ValueError, match='rnn_cell_fn'):
    estlab.experimental.RNNClassifier([col], units=[3],
                                      rnn_cell_fn=lambda: nn.GRUCell(3))
  with pytest.raises(ValueError, match='units'):
    estlab.experimental.RNNClassifier([col])
  with pytest.raises(ValueError, match='context_feature_columns'):
    estlab.experimental.RNNClassifier([fc.numeric_column('c')], units=[2])
  with pytest.raises(ValueError, match='SequentialHeadWrapper'):
    estlab.experimental.RNNEstimator(heads.BinaryClassHead(), [col], units=[2],
                                     return_sequences=True)


def test_return_sequences_scores_valid_steps_only(tmp_path):
  """Per-step labels (running parity); loss over the valid steps only."""
  seqs = [['a', 'b', 'a'], ['b'], ['a', 'a']]
  labels = [[s[:i + 1].count('a') % 2 for i in range(len(s))] for s in seqs]
  est = estlab.experimental.RNNClassifier(
      [fc.indicator_column(_tokens())], units=[4], cell_type='gru',
      return_sequences=True, label_vocabulary=None, model_dir=str(tmp_path))
  est.train(lambda: ({'tok': seqs}, labels), steps=2)
  metrics = est.evaluate(lambda: ({'tok': seqs}, labels), steps=1)
  pred = list(est.predict(lambda: {'tok': seqs}))
  assert [p['sequence_mask'].tolist() for p in pred] == [
      [True, True, True, False], [True, False, False, False],
      [True, True, False, False]]
  per_step = []
  for p, y in zip(pred, labels):
    prob = p['logistic'][:len(y), 0].astype(np.float64)
    per_step += list(-(np.array(y) * np.log(prob)
                       + (1 - np.array(y)) * np.log(1 - prob)))
  assert metrics['loss'] == pytest.approx(np.mean(per_step), rel=1e-4)
  assert metrics['label/mean'] == pytest.approx(np.mean(sum(labels, [])))


def test_rnn_estimator_regression_with_numeric_sequences(tmp_path):
  """RNNEstimator with any head: the sum of a sequence, from its steps."""
  rng = np.random.default_rng(0)
  seqs = [list(rng.normal(size=rng.integers(1, 6))) for _ in range(64)]
  y = np.array([[sum(s)] for s in seqs], np.float32)
  est = estlab.experimental.RNNEstimator(
      heads.RegressionHead(), [fc.sequence_numeric_column('x')], units=[8],
      cell_type='gru', optimizer='Adam', model_dir=str(tmp_path))
  input_fn = lambda: ({'x': seqs}, y)  # noqa: E731
  est.train(input_fn, steps=150)
  assert est.evaluate(input_fn, steps=1)['average_loss'] < 0.1 * float(
      np.mean(y ** 2))


def test_export_serves_sequences_of_any_length(trained, tmp_path):
  est = trained('gru')
  path = est.export_saved_model(
      str(tmp_path / 'export'),
      estlab.export.build_parsing_serving_input_receiver_fn(
          fc.make_parse_example_spec([fc.indicator_column(_tokens())])))
  predict = estlab.export.load(path).signatures['predict']
  seqs = [['a'], ['a', 'b'], ['b', 'b', 'a', 'a', 'a'], list('babab'),
          list('abbbbbb')]
  served = predict({'tok': seqs})['class_ids'].ravel().tolist()
  assert served == [s.count('a') % 2 for s in seqs]
