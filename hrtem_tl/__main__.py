"""Command line: ``python -m hrtem_tl {simulate,train,book,claims,cache,student,bench} ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .datasets import SERIES
from .presets import PRESETS

SERIES_CHOICES = [*SERIES, "all"]
DEVICES = ["auto", "cpu", "cuda"]


def _common(p: argparse.ArgumentParser, seeds: bool = True, device: bool = True) -> None:
    p.add_argument("--series", default="all", help=f"one of {', '.join(SERIES_CHOICES)} (default all)")
    p.add_argument("--preset", default="cpu", help=f"one of {', '.join(PRESETS)} (default cpu)")
    p.add_argument("--cache", default=None, help="cache folder (default $HRTEM_TL_CACHE or ./.hrtem_cache)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a scientific parameter in the study's units, e.g. --set 'doses=[10, 20, 40, 80]' or "
                        "--set dose_defocus=-5 (repeatable; names: hrtem_tl/datasets.py PARAMETERS)")
    if seeds:
        p.add_argument("--seeds", default=None, help="training seeds, e.g. 0 or 0,1 (default: the preset's)")
    if device:
        p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto: cuda if usable)")
        p.add_argument("--scheduler", default=None,
                       help="Dask scheduler address (tcp://host:8786), or 'synchronous'; default: a local cluster")
        p.add_argument("--verbose", action="store_true", help="library log messages on the terminal too")


def _check(name: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is unknown; allowed: {', '.join(allowed)}")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m hrtem_tl", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    _common(sub.add_parser("simulate", help="simulate the dataset series (cached)"), seeds=False)
    _common(sub.add_parser("train", help="pretrain and transfer the study grid (cached)"))
    book = sub.add_parser("book", help="make what is missing, execute the chapters, build the book")
    _common(book)
    book.add_argument("--out", default="_build", help="build folder (default _build)")
    _common(sub.add_parser("claims", help="the study's claims: this run's statistics and verdicts, from the cache"),
            device=False)
    inv = sub.add_parser("cache", help="what the cache holds and what a book needs; --check, --prune")
    inv.add_argument("--preset", default="cpu", help=f"one of {', '.join(PRESETS)} (default cpu)")
    inv.add_argument("--seeds", default=None, help="training seeds, e.g. 0 or 0,1 (default: the preset's)")
    inv.add_argument("--cache", default=None, help="cache folder (default $HRTEM_TL_CACHE or ./.hrtem_cache)")
    inv.add_argument("--check", action="store_true", help="read every artefact back; move damaged ones aside")
    inv.add_argument("--prune", action="store_true", help="list artefacts no preset makes any more (dry run)")
    inv.add_argument("--yes", action="store_true", help="with --prune: remove them")
    student = sub.add_parser("student", help="student notebooks: every chapter with its solutions taken out")
    student.add_argument("out", help="folder for the notebooks (and their paired .py files)")
    student.add_argument("--preset", default="class", help=f"the notebooks' default preset, one of "
                         f"{', '.join(PRESETS)} (default class)")
    abl = sub.add_parser("ablate", help="what a small study keeps: Fig 9.1 / 9.2 claims at several training scales")
    abl.add_argument("--arms", default=None, help="comma-separated arm names (default: every arm; see "
                     "hrtem_tl/ablation.py)")
    abl.add_argument("--series", default="dose,structure", help="dose, structure or both (default both)")
    abl.add_argument("--sources", default="all", help="structure sources: all (default) or figure (9 small + 4 "
                     "large)")
    abl.add_argument("--cache", default=None, help="cache folder (default $HRTEM_TL_CACHE or ./.hrtem_cache)")
    abl.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    abl.add_argument("--scheduler", default=None, help="Dask scheduler address, or 'synchronous'")
    abl.add_argument("--verbose", action="store_true", help="library log messages on the terminal too")
    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench.add_argument("what", help="simulate, train or class")
    bench.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    bench.add_argument("--keep", default=None, help="class: keep each chapter's cache under KEEP/<chapter>")
    return ap


def _terminate(signum, frame):
    """SIGTERM unwinds like Ctrl-C, so that local Dask workers are shut down, not orphaned."""
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    args = parser().parse_args(argv)
    try:
        if args.command not in ("bench", "cache", "student", "ablate"):
            _check("series", args.series, SERIES_CHOICES)
        if args.command not in ("bench", "ablate"):
            _check("preset", args.preset, list(PRESETS))
        if hasattr(args, "device"):
            _check("device", args.device, DEVICES)
        return _run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        from .parallel import WorkerDied

        if not isinstance(err, WorkerDied):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished artefacts are kept; rerun to resume", file=sys.stderr)
        return 130


def _run(args) -> int:
    from . import console
    from .cache import cache_dir
    from .datasets import command, parse_setting, with_parameters
    from .presets import get_preset

    if args.command == "bench":
        from . import bench as benchmarks

        _check("what", args.what, ["simulate", "train", "class"])
        extra = {"keep": args.keep} if args.what == "class" and args.keep else {}
        getattr(benchmarks, f"bench_{args.what}")(device=args.device, **extra)
        return 0
    if args.command == "ablate":
        from . import ablation

        series = [x.strip() for x in args.series.split(",") if x.strip()]
        for name in series:
            _check("series", name, list(ablation.FIGURE_SERIES))
        arms = [ablation.get_arm(a.strip()).name for a in args.arms.split(",")] if args.arms else None
        log = console.setup(args.verbose, cache_dir(args.cache) / "hrtem_tl.log")
        table = ablation.run_ablation(arms, series, args.cache, args.device, args.scheduler, args.sources)
        print(ablation.format_table(table))
        print(f"table: {ablation.summary_path(args.cache)} (the book's 'What a small study keeps' page); log: {log}")
        return 0
    if args.command == "student":
        from .student import write_student_notebooks

        paths = write_student_notebooks(args.out, args.preset)
        print(f"{len(paths)} student notebooks (solutions taken out, preset {args.preset}) in {args.out}")
        return 0
    preset = get_preset(args.preset, getattr(args, "seeds", None))
    settings = dict(parse_setting(text) for text in getattr(args, "set", []))
    preset = with_parameters(preset, settings)
    if args.command == "cache":
        from .inventory import report

        return report(preset, args.cache, args.check, args.prune, args.yes)
    if args.command == "claims":
        from .claims import print_scorecards

        print_scorecards(args.series, preset, args.cache)
        return 0
    out = Path(args.out) if args.command == "book" else cache_dir(args.cache)
    log = console.setup(args.verbose, out / "hrtem_tl.log")
    if args.command == "simulate":
        from .datasets import simulate_series
        from .study import simulation_device

        paths = simulate_series(args.series, preset, args.cache, simulation_device(args.device), args.scheduler)
        print(f"{len(paths)} datasets ready under {cache_dir(args.cache) / 'datasets'}; log: {log}")
    elif args.command == "train":
        from .study import run_study

        run_study(args.series, preset, args.cache, args.device, args.scheduler)
        print(f"trained; `{command('claims', args.series, preset, args.cache)}` reads the verdicts; log: {log}")
    else:
        from .book import build_book

        index = build_book(preset, args.cache, args.device, args.scheduler, out=args.out, settings=settings)
        print(f"book: {index}\nlog: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
