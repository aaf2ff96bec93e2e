"""The ``estlab`` command: ``estlab demo`` (and more subcommands as they land)."""
from __future__ import annotations

import argparse
import logging
import sys


def _demo(args: argparse.Namespace) -> int:
  from estlab import demo  # pylint: disable=g-import-not-at-top
  metrics = demo.run(model_dir=args.model_dir, steps=args.steps,
                     progress_bar=not args.no_progress)
  return 0 if metrics["accuracy"] > 0 else 1


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
  return parser


def main(argv: list[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  for noisy in ("absl", "jax"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  return args.func(args)


if __name__ == "__main__":
  sys.exit(main())
