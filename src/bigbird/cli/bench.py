"""`bigbird bench`: run the benchmark scripts of the source checkout (benchmarks/), quick by default.

The scripts compare against Transformers, which the library itself never imports, so they stay scripts in
the repository (install with `pip install -e ".[bench]"`) and this subcommand runs them in-process.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

BENCHMARKS = {"attention": "bench_attention.py", "model": "bench_model.py"}
QUICK = {"attention": ["--quick"], "model": ["--lengths", "1024", "4096", "--repeats", "1", "--train-length", "0"]}
HELP = """\
Run the benchmarks of the source checkout: one attention layer (ours vs Transformers vs dense SDPA, and
compiled FlexAttention in the full run) and the whole bigbird-roberta-base-shaped model (ours vs
Transformers). Quick by default (the attention benchmark's --quick; for the model, forward at 1024 and 4096
once, no training step); --full runs the complete grids. Options the subcommand does not know go to the
scripts, after the quick ones, so they win.

examples:
  bigbird bench                               # both benchmarks, quick (a few minutes)
  bigbird bench model --full                  # the whole-model benchmark, complete grid
  bigbird bench attention --lengths 2048 --repeats 3"""


def benchmarks_dir() -> Path:
    """benchmarks/ of the checkout this package is installed from (src/bigbird/../../benchmarks)."""
    return Path(__file__).resolve().parents[2] / "benchmarks"


def add_bench_parser(commands) -> None:
    sub = commands.add_parser("bench", help="run the attention and model benchmarks (quick by default)",
                              description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_argument("which", nargs="*", metavar="{attention,model}",
                     help="which benchmarks to run (default: both)")
    sub.add_argument("--full", action="store_true", help="the complete grid instead of --quick (can take an hour)")
    sub.set_defaults(run=run_bench)


def run_bench(args, extra: list[str]) -> int:
    """Run each chosen script as `python benchmarks/<script> [QUICK options] EXTRA...`; returns the exit status."""
    which = args.which or list(BENCHMARKS)
    unknown = [name for name in which if name not in BENCHMARKS]
    if unknown:
        print(f"bigbird bench: error: unknown benchmark {unknown[0]!r}: choose from {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    folder = benchmarks_dir()
    for name in which:
        script = folder / BENCHMARKS[name]
        if not script.is_file():
            print(f"bigbird bench: error: {script} not found: the benchmarks live in the source repository; "
                  "install from a checkout with pip install -e \".[bench]\"", file=sys.stderr)
            return 1
        argv = [str(script), *([] if args.full else QUICK[name]), *extra]
        print(f"bigbird bench: python {' '.join(argv)}", file=sys.stderr, flush=True)
        saved, saved_path = sys.argv, sys.path
        sys.argv, sys.path = argv, [str(script.parent), *sys.path]  # as `python script` sees its own folder
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as stop:
            if stop.code not in (0, None):
                return stop.code if isinstance(stop.code, int) else 1
        except Exception as error:
            print(f"bigbird bench: error: {script.name} stopped: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
        finally:
            sys.argv, sys.path = saved, saved_path
    return 0
