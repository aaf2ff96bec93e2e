"""Exports a trained DNNClassifier on this machine and serves it from the
artifact alone (``estlab.export.load``), on the default device (the GPU when
there is one): its lowering for that platform runs. Prints one JSON line."""
import json
import os
import sys
import tempfile

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import census_data as cd  # noqa: E402  pylint: disable=g-import-not-at-top
import census  # noqa: E402  pylint: disable=g-import-not-at-top
import estlab  # noqa: E402  pylint: disable=g-import-not-at-top


def main() -> None:
  df = cd.make(5000, seed=0)
  keys = cd.NUMERIC + list(cd.CATEGORICAL) + [cd.HASHED]
  cols = census.columns("dnn", df)
  est = estlab.DNNClassifier([16], cols, config=estlab.RunConfig(
      progress_bar=False, tf_random_seed=0))
  est.train(estlab.inputs.pandas_input_fn(df[keys], df[cd.LABEL], batch_size=256,
                                          num_epochs=1, shuffle=True, seed=0))
  spec = estlab.feature_column.make_parse_example_spec(cols)
  receiver = estlab.export.build_raw_serving_input_receiver_fn(spec)
  path = est.export_saved_model(tempfile.mkdtemp(), receiver)
  served = estlab.export.load(path)
  batch = {k: df[k].to_numpy()[:64] for k in keys}
  got = np.asarray(served.signatures["predict"](batch)["logistic"]).reshape(-1)
  want = np.array([p["logistic"][0] for p in est.predict(
      estlab.inputs.pandas_input_fn(df[keys].iloc[:64], shuffle=False))])
  print(json.dumps({"bench": "gpu_export", "device": str(jax.devices()[0]),
                    "max_abs_diff": float(np.max(np.abs(got - want)))}))


if __name__ == "__main__":
  main()
