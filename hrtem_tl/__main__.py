"""Command line: ``python -m hrtem_tl {simulate,train,book,bench} ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from .datasets import SERIES
from .presets import PRESETS

SERIES_CHOICES = [*SERIES, "all"]


def _common(p: argparse.ArgumentParser, devices: list[str], default_device: str) -> None:
    p.add_argument("--series", default="all", help=f"one of {', '.join(SERIES_CHOICES)} (default all)")
    p.add_argument("--preset", default="cpu", help=f"one of {', '.join(PRESETS)} (default cpu)")
    p.add_argument("--cache", default=None, help="cache folder (default $HRTEM_TL_CACHE or ./.hrtem_cache)")
    p.add_argument("--device", default=default_device, help=f"one of {', '.join(devices)} (default {default_device})")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address (tcp://host:8786), or 'synchronous'; default: a local cluster")


def _check(name: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is unknown; allowed: {', '.join(allowed)}")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m hrtem_tl", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    _common(sub.add_parser("simulate", help="simulate the dataset series (cached)"), ["cpu", "gpu"], "cpu")
    _common(sub.add_parser("train", help="pretrain and transfer the study grid (cached)"), ["auto", "cpu", "cuda"],
            "auto")
    book = sub.add_parser("book", help="make what is missing, execute the chapters, build the book")
    _common(book, ["auto", "cpu", "cuda"], "auto")
    book.add_argument("--out", default="_build", help="build folder (default _build)")
    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench.add_argument("what", help="simulate or train")
    return ap


def _terminate(signum, frame):
    """SIGTERM unwinds like Ctrl-C, so that local Dask workers are shut down, not orphaned."""
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("hrtem_tl").setLevel(logging.INFO)
    try:
        if args.command != "bench":
            _check("series", args.series, SERIES_CHOICES)
            _check("preset", args.preset, list(PRESETS))
        if args.command == "simulate":
            from .datasets import simulate_series

            _check("device", args.device, ["cpu", "gpu"])
            paths = simulate_series(args.series, args.preset, args.cache, args.device, args.scheduler)
            print(f"{len(paths)} datasets ready under {paths[0].parents[2] if paths else args.cache}")
        elif args.command == "train":
            from .study import run_study

            _check("device", args.device, ["auto", "cpu", "cuda"])
            run_study(args.series, args.preset, args.cache, args.device, args.scheduler)
        elif args.command == "book":
            from .book import build_book

            _check("device", args.device, ["auto", "cpu", "cuda"])
            index = build_book(args.preset, args.cache, args.device, args.scheduler, out=args.out)
            print(f"book: {index}")
        else:
            from . import bench as benchmarks

            _check("what", args.what, ["simulate", "train"])
            getattr(benchmarks, f"bench_{args.what}")()
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
