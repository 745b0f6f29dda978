"""The ``redtick`` command: demo, ingest, info, upgrade, compact, migrate, export, backup, restore, stop, serve."""

from __future__ import annotations

import argparse
import logging
import sys

from redtick import __version__, datasets
from redtick.backup import backup, pending_restore, restore
from redtick.catalog import compact, store_summary, upgrade
from redtick.connection import connect
from redtick.demo import run_demo
from redtick.errors import RedtickError
from redtick.extras import require
from redtick.ingest import format_report as format_ingest_report
from redtick.ingest import ingest_file, ingest_frame
from redtick.migrate import format_report as format_migrate_report
from redtick.migrate import migrate
from redtick.notebook_export import export_notebook

__all__ = ["build_parser", "main"]


def _demo(args: argparse.Namespace) -> int:
    return run_demo(data_dir=args.data, out=args.out)


def _ingest(args: argparse.Namespace) -> int:
    columns = dict(pair.split("=", 1) for pair in args.column) if args.column else None
    options = {"kind": args.kind, "interval": args.interval, "chunk_rows": args.chunk_rows, "progress": not args.quiet,
               "columns": columns, "unit": args.unit}
    if args.sample:  # as its loader reads it: the decimals a vendor's float32 prices stand for
        report = ingest_frame(datasets.load(args.sample), args.symbol, source=f"sample {args.sample}", **options)
    else:
        report = ingest_file(args.file, args.symbol, **options)
    print(format_ingest_report(report))
    return 0


def _info(args: argparse.Namespace) -> int:
    rows = store_summary()
    pending = pending_restore()
    if pending:
        rows.append(("incomplete restore", f"{', '.join(sorted(pending))}: a restore stopped before finishing these; "
                                           "run the same `redtick restore FILE --force` again to complete them"))
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    done = upgrade(args.symbol)
    for r in done:
        print(f"{r.symbol}: {r.from_ticks:,} candles rebuilt from ticks, {r.kept:,} kept as stored "
              f"(imported bars, or ticks trimmed: VWAP unknown), {r.old_keys_removed:,} old keys removed")
    scope = f"symbol {args.symbol!r}" if args.symbol else "every symbol"
    print(f"upgraded {len(done)} symbol(s)" if done else f"nothing to upgrade: {scope} is in the current layout")
    return 0


def _compact(args: argparse.Namespace) -> int:
    done = compact(args.symbols or None)
    for c in done:
        print(f"{c.symbol}: {c.sealed:,} of {c.chunks:,} tick chunks sealed now, {c.already_sealed:,} already sealed, "
              f"{c.kept_raw:,} kept raw (the head, and chunks too small to gain); {c.bytes_before:,} -> "
              f"{c.bytes_after:,} bytes stored")
        print(f"{c.symbol}: {c.candles_sealed:,} of {c.candle_chunks:,} candle chunks sealed now (each interval's "
              f"newest kept raw); {c.candle_bytes_before:,} -> {c.candle_bytes_after:,} bytes stored")
    before = sum(c.bytes_before + c.candle_bytes_before for c in done)
    after = sum(c.bytes_after + c.candle_bytes_after for c in done)
    print(f"compacted {len(done)} symbol(s): {sum(c.sealed for c in done):,} tick chunks and "
          f"{sum(c.candles_sealed for c in done):,} candle chunks sealed, {before:,} -> {after:,} bytes stored (string lengths)")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    report = migrate(args.source, dry_run=not args.write, kinds=args.kinds)
    print(format_migrate_report(report))
    return 0


def _export(args: argparse.Namespace) -> int:
    print(f"wrote {export_notebook(args.notebook, args.output)} (opens offline: nothing fetched from a CDN)")
    return 0


def _backup(args: argparse.Namespace) -> int:
    print(backup(args.file, include_sessions=args.include_sessions))
    return 0


def _restore(args: argparse.Namespace) -> int:
    print(restore(args.file, force=args.force, include_sessions=not args.skip_sessions))
    return 0


def _stop(args: argparse.Namespace) -> int:
    store = connect().store
    if store is None:
        print("redtick: no local store in use (REDIS_URL or REDIS_HOST points elsewhere); nothing to stop")
        return 1
    store.stop()
    print(f"stopped the local store's server in {store.home}; the next use starts it again")
    return 0


def _serve(args: argparse.Namespace) -> int:
    require("fastapi", "redtick serve")
    uvicorn = require("uvicorn", "redtick serve")
    from redtick.web import create_app

    # proxy_headers=False: uvicorn would take X-Forwarded-For from any peer on 127.0.0.1, letting a
    # local client dodge the per-address limits; the app reads it only from REDTICK_TRUSTED_PROXIES.
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="debug" if args.verbose else "info",
                proxy_headers=False)
    return 0


def _mapping(text: str) -> str:
    if "=" not in text or not all(text.split("=", 1)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=FIELD, such as size=volume")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The ``redtick`` command's argument parser: one subcommand per job, each calling its function.

    Examples
    --------
    >>> build_parser().parse_args(["ingest", "ticks.csv", "--symbol", "ES"]).symbol
    'ES'
    """
    parser = argparse.ArgumentParser(prog="redtick", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument("--version", action="version", version=f"redtick {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the main job end to end on the configured Redis")
    demo.add_argument("--data", help="folder with es_ticks_20130901.parquet (default: the sample installed with redtick)")
    demo.add_argument("--out", default="reports", help="folder for the HTML report (default: reports)")
    demo.set_defaults(func=_demo)
    ingest = sub.add_parser("ingest", help="load a CSV or Parquet file of ticks or candles")
    source = ingest.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", help="a .csv or .parquet file")
    source.add_argument("--sample", choices=list(datasets.SAMPLES),
                        help="a sample installed with redtick (redtick.datasets) instead of a file")
    ingest.add_argument("--symbol", required=True, help="the symbol to store it under, such as ES or BTCUSDT")
    ingest.add_argument("--kind", choices=["auto", "ticks", "candles"], default="auto",
                        help="auto: candles when the file has open/high/low/close columns (default)")
    ingest.add_argument("--interval", help="the candles' interval, such as 1m (guessed from bar times if omitted)")
    ingest.add_argument("--chunk-rows", type=int, default=250_000, help="rows per write (default: 250000)")
    ingest.add_argument("--column", action="append", metavar="NAME=FIELD", type=_mapping,
                        help="the file's column for a field, such as size=volume or time=ts (repeat for more)")
    ingest.add_argument("--unit", choices=["s", "ms", "us", "ns"],
                        help="unit of numeric times (default ms; numbers that look like another unit are refused)")
    ingest.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ingest.set_defaults(func=_ingest)
    info = sub.add_parser("info", help="where the data lives: store, server version, keys, memory, symbols")
    info.set_defaults(func=_info)
    upgrade_command = sub.add_parser("upgrade", help="rebuild candles stored by an older redtick from the stored ticks")
    upgrade_command.add_argument("--symbol", help="only this symbol (default: every symbol)")
    upgrade_command.set_defaults(func=_upgrade)
    compact_command = sub.add_parser("compact", help="seal (compress) the raw tick chunks but each series' head: "
                                                     "series written before sealed chunks or with compression off")
    compact_command.add_argument("symbols", nargs="*", metavar="SYMBOL", help="only these symbols (default: every symbol)")
    compact_command.set_defaults(func=_compact)
    migrate_command = sub.add_parser("migrate", help="bring the platform's previous Redis cache layout into redtick's "
                                                     "(a dry run unless --write)")
    migrate_command.add_argument("--from", dest="source", required=True, metavar="URL",
                                 help="the previous layer's Redis, one server, such as redis://host:6379/0")
    migrate_command.add_argument("--write", action="store_true",
                                 help="write into redtick's Redis (REDIS_URL...); without it nothing is written")
    migrate_command.add_argument("--kinds", metavar="KINDS",
                                 help="comma-separated, of prices,series,ohlcv,preferences,sessions,alerts (default: all)")
    migrate_command.set_defaults(func=_migrate)
    export_command = sub.add_parser("export", help="run a notebook and write it as one HTML file that opens offline")
    export_command.add_argument("notebook", help="an .ipynb file, run in its own folder")
    export_command.add_argument("-o", "--output", help="the HTML file (default: beside the notebook, .html)")
    export_command.set_defaults(func=_export)
    backup_command = sub.add_parser("backup", help="write the whole namespace (ticks, candles, alerts) to one file "
                                                   "that pandas/pyarrow read without Redis")
    backup_command.add_argument("file", help="the backup file to write, such as store.redtick-backup")
    backup_command.add_argument("--include-sessions", action="store_true",
                                help="also the user sessions and preferences (session ids are bearer tokens)")
    backup_command.set_defaults(func=_backup)
    restore_command = sub.add_parser("restore", help="load a backup file into the configured store, checked against "
                                                     "its manifest")
    restore_command.add_argument("file", help="a file written by `redtick backup`")
    restore_command.add_argument("--force", action="store_true",
                                 help="replace the symbols of the backup that the store holds (only those)")
    restore_command.add_argument("--skip-sessions", action="store_true",
                                 help="leave out the sessions and preferences the backup holds")
    restore_command.set_defaults(func=_restore)
    stop = sub.add_parser("stop", help="stop the local store's server now (it also stops by itself when unused)")
    stop.set_defaults(func=_stop)
    serve = sub.add_parser("serve", help="run the HTTP API (FastAPI) with uvicorn")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default: 8000)")
    serve.set_defaults(func=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``redtick`` command with ``argv`` (the process's arguments by default); returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args) or 0
    except (RedtickError, FileNotFoundError) as exc:  # a missing input file is one line too, not a traceback
        print(f"redtick: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
