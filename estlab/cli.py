"""The ``estlab`` command: ``estlab demo``, ``estlab serve`` and ``estlab inspect``."""
from __future__ import annotations

import argparse
import logging
import os
import sys


def _demo(args: argparse.Namespace) -> int:
  from estlab import demo  # pylint: disable=g-import-not-at-top
  metrics = demo.run(model_dir=args.model_dir, steps=args.steps,
                     progress_bar=not args.no_progress)
  return 0 if metrics["accuracy"] > 0 else 1


def _serve(args: argparse.Namespace) -> int:
  from estlab.export import _batching, _server  # pylint: disable=g-import-not-at-top
  try:
    if (args.export_dir is None) == (args.model_config_file is None):
      raise ValueError("give EXPORT_DIR_OR_BASE or --model-config-file FILE "
                       "(several models), not " +
                       ("both" if args.export_dir else "neither"))
    batching = _batching.from_flags(args.enable_batching,
                                    args.batching_parameters_file)
    _server.serve(args.export_dir, model_name=args.model_name, host=args.host,
                  port=args.port, max_body_bytes=args.max_body_bytes,
                  model_config_file=args.model_config_file,
                  file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
                  model_config_file_poll_wait_seconds=(
                      args.model_config_file_poll_wait_seconds),
                  batching=batching,
                  num_threads=args.rest_api_num_threads,
                  timeout_ms=args.rest_api_timeout_in_ms)
  except (OSError, ValueError) as e:  # no export there, port taken, ...
    print(f"estlab serve: error: {e}", file=sys.stderr)
    return 2
  return 0


def _inspect(args: argparse.Namespace) -> int:
  from estlab.checkpoint import inspect  # pylint: disable=g-import-not-at-top
  model_dir = args.model_dir
  try:
    for damaged in inspect.damaged_checkpoints(model_dir):
      step = int(os.path.basename(damaged.path))
      if args.step == step:
        raise damaged
      print(f"step {step}: damaged, skipped: {damaged.file!r} "
            f"{damaged.reason} ({damaged.path})")
    checkpoints = inspect.list_checkpoints(model_dir)
    if not checkpoints:
      raise ValueError(
          f"no checkpoints in {model_dir!r}: pass the model_dir an Estimator "
          "trained in (it holds one directory per saved step).")
    steps = [c["step"] for c in checkpoints]
    if args.step is not None and args.step not in steps:
      raise ValueError(f"no checkpoint for --step {args.step} in "
                       f"{model_dir!r}; saved steps are {steps}.")
    step = steps[-1] if args.step is None else args.step
    values = inspect.variable_values(model_dir, step)
    if args.var is not None and args.var not in values:
      raise ValueError(f"no variable {args.var!r} at step {step}; variables "
                       f"are {sorted(values)}.")
  except (OSError, ValueError) as e:
    print(f"estlab inspect: error: {e}", file=sys.stderr)
    return 2
  if inspect.checkpoint_format(model_dir) == "tensorflow":
    print(f"TensorFlow checkpoints in {model_dir} (read without TensorFlow; "
          "warm_start_from= takes this model_dir):")
  else:
    print(f"checkpoints in {model_dir}:")
  print(inspect.format_checkpoints(checkpoints))
  print(f"\nvariables at step {step}:")
  if args.var is None:
    print(inspect.format_variables(inspect.table_rows(values)))
  else:
    value = values[args.var]
    print(inspect.format_variables(inspect.table_rows({args.var: value})))
    print(f"\nhistogram of {args.var}:")
    print(inspect.format_histogram(value))
  metrics = inspect.eval_metrics_at(model_dir, step)
  for name, values_at in metrics.items():
    print(f"\n{name} at step {step}: " + ", ".join(
        f"{k} = {v:.6g}" for k, v in sorted(values_at.items())))
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="estlab", description="tf.estimator's API on JAX, for notebooks.")
  sub = parser.add_subparsers(dest="command", required=True)
  demo = sub.add_parser("demo", help="train and evaluate a penguin classifier "
                        "(checkpoints + TensorBoard events)")
  demo.add_argument("--model-dir", default=None,
                    help="where to write (default: a new temporary directory)")
  demo.add_argument("--steps", type=int, default=600, help="training steps")
  demo.add_argument("--no-progress", action="store_true",
                    help="no progress bar")
  demo.set_defaults(func=_demo)
  serve = sub.add_parser(
      "serve", help="serve an export over TensorFlow Serving's REST API")
  serve.add_argument("export_dir", metavar="EXPORT_DIR_OR_BASE", nargs="?",
                     help="an export_saved_model directory <base>/<timestamp>, "
                     "or <base> (the newest version is served)")
  serve.add_argument("--model-config-file", "--model_config_file",
                     metavar="FILE", default=None,
                     help="TF Serving's ModelServerConfig (text proto or "
                     "JSON): several models, version policies and labels, "
                     "instead of EXPORT_DIR_OR_BASE")
  serve.add_argument("--model-config-file-poll-wait-seconds",
                     "--model_config_file_poll_wait_seconds", type=float,
                     default=0.0, metavar="S",
                     help="re-read --model-config-file every S seconds "
                     "(default: %(default)s, never)")
  serve.add_argument("--file-system-poll-wait-seconds",
                     "--file_system_poll_wait_seconds", type=float,
                     default=1.0, metavar="S",
                     help="look for new versions under each base path every S "
                     "seconds (default: %(default)s; 0: only at start)")
  serve.add_argument("--model-name", default="default",
                     help="NAME in /v1/models/NAME (default: %(default)s, as "
                     "in TF Serving)")
  serve.add_argument("--host", default="127.0.0.1",
                     help="interface to listen on (default: %(default)s; "
                     "0.0.0.0 for all)")
  serve.add_argument("--port", type=int, default=8501,
                     help="TCP port (default: %(default)s; 0 picks a free one)")
  serve.add_argument("--max-body-bytes", type=int, default=10 * 1024 * 1024,
                     help="larger request bodies get 413 (default: "
                     "%(default)s)")
  serve.add_argument("--enable-batching", "--enable_batching",
                     action="store_true",
                     help="join concurrent requests into batches (TF "
                     "Serving's --enable_batching; =true/=false too)")
  serve.add_argument("--batching-parameters-file",
                     "--batching_parameters_file", default="", metavar="FILE",
                     help="TF Serving's BatchingParameters text proto, e.g. "
                     "'max_batch_size { value: 32 }' (needs --enable-batching)")
  serve.add_argument("--rest-api-num-threads", "--rest_api_num_threads",
                     type=int, default=None, metavar="N",
                     help="handler threads; requests past them and a "
                     "queue of 4*N get 503 (default: max(16, 4 * CPUs))")
  serve.add_argument("--rest-api-timeout-in-ms", "--rest_api_timeout_in_ms",
                     type=int, default=30000, metavar="MS",
                     help="a computation running longer answers 504 "
                     "(default: %(default)s, as TF Serving)")
  serve.set_defaults(func=_serve)
  insp = sub.add_parser(
      "inspect", help="list a model_dir's checkpoints and their variables")
  insp.add_argument("model_dir", metavar="MODEL_DIR",
                    help="an Estimator's model_dir (estlab's, or a "
                    "tf.estimator one: TF checkpoints)")
  insp.add_argument("--step", type=int, default=None,
                    help="the checkpoint to show (default: the latest)")
  insp.add_argument("--var", metavar="NAME", default=None,
                    help="show one variable's statistics and a histogram, "
                    "e.g. linear/kernel")
  insp.set_defaults(func=_inspect)
  return parser


def _bool_flags(argv: list[str]) -> list[str]:
  """TF Serving's ``--enable_batching=true|false`` as the bare flag (or none)."""
  out = []
  for arg in argv:
    flag, eq, value = arg.partition("=")
    if eq and flag in ("--enable-batching", "--enable_batching"):
      if value.lower() not in ("true", "false", "1", "0"):
        raise SystemExit(f"estlab serve: error: {arg!r}: use true or false.")
      if value.lower() in ("true", "1"):
        out.append(flag)
      continue
    out.append(arg)
  return out


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  args = build_parser().parse_args(_bool_flags(argv))
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  for noisy in ("absl", "jax"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  return args.func(args)


if __name__ == "__main__":
  sys.exit(main())
