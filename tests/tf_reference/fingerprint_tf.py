"""TF 2.15's hashed ids, for tests/feature_column/test_fingerprint.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/fingerprint_tf.py
writes, next to this file:

* ``fingerprint_tf215.json``:
  - ``strings``: ASCII strings of every byte length 0..130 (two each, one
    with NUL and high bytes) and 2000 random unicode strings, with
    ``tf.fingerprint(..., 'farmhash64')`` of each (TF's ``Fingerprint64``,
    checked here against ``to_hash_bucket_fast``) as decimal strings;
  - ``hashed``: ``categorical_column_with_hash_bucket`` ids of those strings
    (``''`` left out: a missing value) and of int64 values (negative, large, int64's ends) for several bucket
    sizes;
  - ``crossed``: ``crossed_column`` ids of 2-3 keys (string x int x
    bucketized, vocabulary columns, nested crosses, float keys, ragged
    (sparse) and dense features, with ``''`` and -1 in dense ones), with and
    without ``hash_key``;
  - ``vocabulary``: vocabulary list / file columns with ``num_oov_buckets``;
  - ``linear``: a LinearClassifier over hashed, crossed and OOV-bucket
    columns trained a few steps: its rows and TF's probabilities and logits.
  Each feature is ``{"values", "dtype", "ragged"}``; ids are per row, in TF's
  order, with dropped values left out.
* ``hashed_checkpoint/linear/``: that LinearClassifier's model_dir (the state
  file and the newest checkpoint only).
"""
import json
import os
import random
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow.python.feature_column import feature_column_v2 as fcv2

tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
fc = tf.feature_column
HERE = os.path.dirname(os.path.abspath(__file__))
CKPT = os.path.join(HERE, 'hashed_checkpoint', 'linear')
VOCAB_FILE_LINES = ['apple', 'banana', 'cherry']


def _strings():
  rng = random.Random(22)
  out = []
  for n in range(131):
    out.append(''.join(rng.choice('abcdefghijklmnopqrstuvwxyz0123456789 ._-')
                       for _ in range(n)))
    out.append(''.join(chr(rng.choice([0, 1, 9, 127]) if rng.random() < 0.2
                           else rng.randrange(32, 127)) for _ in range(n)))
  ranges = [(0x20, 0x7F), (0xA0, 0x2FF), (0x400, 0x4FF), (0x3040, 0x30FF),
            (0x4E00, 0x9FFF), (0x1F300, 0x1F6FF)]
  for _ in range(2000):
    n = rng.randrange(0, 40)
    chars = []
    for _ in range(n):
      lo, hi = rng.choice(ranges)
      chars.append(chr(rng.randrange(lo, hi)))
    out.append(''.join(chars))
  return out


INTS = [0, 1, 2, 7, 10, -2, -7, -1000, 123456789, -987654321, 2**31 - 1,
        -2**31, 2**40 + 3, 2**62, -2**62, 2**63 - 1, -2**63, 4294967296,
        99999999999]


def _tensor(feature):
  dtype = {'string': tf.string, 'int64': tf.int64,
           'float32': tf.float32}[feature['dtype']]
  if feature['ragged']:
    return tf.ragged.constant(feature['values'], dtype=dtype).to_sparse()
  return tf.constant(feature['values'], dtype=dtype)


def ids(column, features):
  """TF's ids per row (dropped values left out), in TF's order."""
  cache = fcv2.FeatureTransformationCache(
      {k: _tensor(v) for k, v in features.items()})
  sparse = column.get_sparse_tensors(cache, None).id_tensor
  rows = [[] for _ in range(int(sparse.dense_shape[0]))]
  for (row, _), value in zip(sparse.indices.numpy().tolist(),
                             sparse.values.numpy().tolist()):
    rows[row].append(value)
  return rows


def feat(values, dtype, ragged=False):
  return {'values': values, 'dtype': dtype, 'ragged': ragged}


def fingerprints(strings):
  fp = tf.fingerprint(tf.constant(strings), method='farmhash64').numpy()
  values = [int.from_bytes(bytes(row), 'little') for row in fp]
  prime = 2**61 - 1
  check = tf.strings.to_hash_bucket_fast(tf.constant(strings), prime).numpy()
  assert all(v % prime == c for v, c in zip(values, check.tolist()))
  return [str(v) for v in values]


# Each cross case: keys as a spec estlab's test rebuilds: a string is a raw
# feature; {"bucketized": key, "boundaries": [...]}, {"vocab": key,
# "list": [...]}, {"identity": key, "buckets": n}, {"cross": [...], "size": n}.
def build(spec):
  if isinstance(spec, str):
    return spec
  if 'bucketized' in spec:
    return fc.bucketized_column(fc.numeric_column(spec['bucketized']),
                                spec['boundaries'])
  if 'vocab' in spec:
    return fc.categorical_column_with_vocabulary_list(spec['vocab'],
                                                      spec['list'])
  if 'identity' in spec:
    return fc.categorical_column_with_identity(spec['identity'],
                                               spec['buckets'])
  return fc.crossed_column([build(k) for k in spec['cross']], spec['size'],
                           hash_key=spec.get('hash_key'))


def cross_cases():
  a = feat([['x'], ['y'], [''], ['héllo'], ['x'], ['a' * 70]], 'string')
  n = feat([[3], [-1], [0], [2**40], [-5], [7]], 'int64')
  price = feat([[1.0], [15.0], [30.0], [9.99], [100.0], [20.0]], 'float32')
  a_ragged = feat([['x', 'y'], [], ['z'], ['x', 'w', 'v'], [''], ['q']],
                  'string', ragged=True)
  n_ragged = feat([[1, 2], [3], [], [-1, 4], [5], [6, 6]], 'int64',
                  ragged=True)
  color = feat([['R'], ['G'], ['B'], ['X'], [''], ['R']], 'string')
  two = feat([['p', 'q'], ['r', ''], ['s', 's'], ['t', 'u'], ['', ''],
              ['v', 'w']], 'string')
  floats = feat([[2.7], [-2.7], [0.5], [3.0], [-1.0], [1e6]], 'float32')
  ident = feat([[0], [1], [2], [3], [1], [0]], 'int64')
  bucket = {'bucketized': 'price', 'boundaries': [10.0, 20.0, 50.0]}
  vocab = {'vocab': 'color', 'list': ['R', 'G', 'B']}
  cases = [
      ('string_x_int', {'cross': ['a', 'n'], 'size': 1000}, {'a': a, 'n': n}),
      ('string_x_int_big', {'cross': ['a', 'n'], 'size': 2**40 + 1},
       {'a': a, 'n': n}),
      ('string_x_int_x_bucketized', {'cross': ['a', 'n', bucket],
                                     'size': 500},
       {'a': a, 'n': n, 'price': price}),
      ('string_x_int_x_bucketized_key', {'cross': ['a', 'n', bucket],
                                         'size': 500, 'hash_key': 42},
       {'a': a, 'n': n, 'price': price}),
      ('hash_key_zero_is_default', {'cross': ['a', 'n'], 'size': 1000,
                                    'hash_key': 0}, {'a': a, 'n': n}),
      ('bucketized_x_vocab', {'cross': [bucket, vocab], 'size': 97},
       {'price': price, 'color': color}),
      ('vocab_x_string', {'cross': [vocab, 'a'], 'size': 1000},
       {'color': color, 'a': a}),
      ('string_x_vocab', {'cross': ['a', vocab], 'size': 1000},
       {'color': color, 'a': a}),
      ('ragged_x_dense', {'cross': ['n', 'a_ragged'], 'size': 10000},
       {'a_ragged': a_ragged, 'n': n}),
      ('ragged_x_ragged_x_identity', {'cross': ['a_ragged', 'n_ragged',
                                               {'identity': 'ident',
                                                'buckets': 4}],
                                      'size': 100000, 'hash_key': 123},
       {'a_ragged': a_ragged, 'n_ragged': n_ragged, 'ident': ident}),
      ('two_values_dense', {'cross': ['two', 'n'], 'size': 1000},
       {'two': two, 'n': n}),
      ('float_key', {'cross': ['f', 'a'], 'size': 1000},
       {'f': floats, 'a': a}),
      ('nested', {'cross': [{'cross': ['a', 'n'], 'size': 10}, vocab],
                  'size': 1000}, {'a': a, 'n': n, 'color': color}),
  ]
  out = []
  for name, spec, features in cases:
    out.append({'name': name, 'column': spec, 'features': features,
                'ids': ids(build(spec), features)})
  return out


def hashed_cases(strings):
  text = [s for s in strings if s]
  out = []
  for size in (1, 7, 1000, 2**31 - 1):
    column = fc.categorical_column_with_hash_bucket('s', size)
    features = {'s': feat([[s] for s in text], 'string')}
    out.append({'name': f'string_{size}', 'size': size, 'dtype': 'string',
                'ids': [r[0] for r in ids(column, features)]})
  for size in (3, 1000, 2**40):
    column = fc.categorical_column_with_hash_bucket('i', size,
                                                    dtype=tf.int64)
    features = {'i': feat([[v] for v in INTS + [-1]], 'int64')}
    out.append({'name': f'int_{size}', 'size': size, 'dtype': 'int64',
                'ids': ids(column, features)})
  return {'ints': INTS + [-1], 'cases': out}


def vocabulary_cases(tmp):
  path = os.path.join(tmp, 'vocab.txt')
  with open(path, 'w') as f:
    f.write('\n'.join(VOCAB_FILE_LINES) + '\n')
  words = [['apple'], ['kiwi'], ['R'], ['mango'], [''], ['日本'], ['G'],
           ['banana'], ['x' * 40], ['B']]
  ints = [[1], [5], [-1], [12345], [-7], [2**40], [3], [0], [99], [2]]
  cases = [
      ('list_string_oov3', fc.categorical_column_with_vocabulary_list(
          'w', ['R', 'G', 'B'], num_oov_buckets=3), 'w', words, 'string'),
      ('list_string_oov100', fc.categorical_column_with_vocabulary_list(
          'w', ['R', 'G', 'B'], num_oov_buckets=100), 'w', words, 'string'),
      ('list_int_oov5', fc.categorical_column_with_vocabulary_list(
          'i', [1, 2, 3], dtype=tf.int64, num_oov_buckets=5), 'i', ints,
       'int64'),
      ('file_string_oov7', fc.categorical_column_with_vocabulary_file(
          'w', path, num_oov_buckets=7), 'w', words, 'string'),
  ]
  out = []
  for name, column, key, values, dtype in cases:
    features = {key: feat(values, dtype)}
    out.append({'name': name, 'features': features,
                'ids': ids(column, features)})
  return {'file_lines': VOCAB_FILE_LINES, 'cases': out}


LINEAR_ROWS = {
    'zip': [['z12'], ['z7'], ['z12'], ['z999'], ['z3'], ['z7'], ['z40'],
            ['z1']],
    'edu': [['BS'], ['HS'], ['MS'], ['BS'], ['PhD'], ['HS'], ['MS'], ['BS']],
    'occ': [['tech'], ['sales'], ['tech'], ['farm'], ['tech'], ['clerk'],
            ['sales'], ['farm']],
    'age': [[23.0], [37.0], [45.0], [61.0], [29.0], [52.0], [33.0], [70.0]],
    'color': [['red'], ['teal'], ['blue'], ['red'], ['olive'], ['green'],
              ['navy'], ['blue']],
    'code': [[101], [-3], [2**33], [101], [7], [0], [-3], [55]],
}
LINEAR_LABELS = [[1], [0], [1], [0], [1], [0], [0], [1]]


def linear_columns():
  age = fc.bucketized_column(fc.numeric_column('age'), [30.0, 40.0, 50.0])
  return [
      fc.categorical_column_with_hash_bucket('zip', 50),
      fc.categorical_column_with_hash_bucket('code', 20, dtype=tf.int64),
      fc.crossed_column(['edu', 'occ'], 100),
      fc.crossed_column([age, 'edu'], 60, hash_key=7),
      fc.categorical_column_with_vocabulary_list(
          'color', ['red', 'green', 'blue'], num_oov_buckets=4),
  ]


def linear_model(tmp):
  def input_fn(labels=True):
    features = {k: tf.constant(v) for k, v in LINEAR_ROWS.items()}
    if not labels:
      return tf.data.Dataset.from_tensors(features)
    return features, tf.constant(LINEAR_LABELS)
  config = tf.estimator.RunConfig(tf_random_seed=7, save_summary_steps=None,
                                  save_checkpoints_steps=100)
  est = tf.estimator.LinearClassifier(linear_columns(), model_dir=tmp,
                                      config=config)
  est.train(input_fn, steps=5)
  preds = list(est.predict(lambda: input_fn(False)))
  prefix = tf.train.latest_checkpoint(tmp)
  shutil.rmtree(CKPT, ignore_errors=True)
  os.makedirs(CKPT)
  base = os.path.basename(prefix)
  for f in os.listdir(tmp):
    if f.startswith(base + '.index') or f.startswith(base + '.data-'):
      shutil.copy(os.path.join(tmp, f), CKPT)
  tf.compat.v1.train.update_checkpoint_state(CKPT, base)
  variables = sorted(name for name, _ in tf.train.list_variables(tmp))
  return {'rows': LINEAR_ROWS, 'labels': LINEAR_LABELS,
          'checkpoint': base, 'variables': variables,
          'probabilities': [p['probabilities'].tolist() for p in preds],
          'logits': [p['logits'].tolist() for p in preds]}


def main():
  strings = _strings()
  tmp = tempfile.mkdtemp()
  out = {
      'strings': strings,
      'fingerprint64': fingerprints(strings),
      'hashed': hashed_cases(strings),
      'crossed': cross_cases(),
      'vocabulary': vocabulary_cases(tmp),
      'linear': linear_model(os.path.join(tmp, 'model')),
  }
  shutil.rmtree(tmp)
  with open(os.path.join(HERE, 'fingerprint_tf215.json'), 'w',
            encoding='utf-8') as f:
    json.dump(out, f, ensure_ascii=False, sort_keys=True)
    f.write('\n')


if __name__ == '__main__':
  main()
