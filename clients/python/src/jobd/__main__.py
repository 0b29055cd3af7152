"""`python -m jobd worker MODULE:ATTRIBUTE`: runs a `jobd.Worker` object
from the shell (like `rq worker`), until SIGINT/SIGTERM or, with
`--burst`, until no job of its types is left."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import List, Optional

from .worker import Worker


def load(spec: str) -> Worker:
    """The `Worker` named by `module.path:attribute` (the current directory
    is on the import path, as for `python -m`)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"expected MODULE:ATTRIBUTE, got {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, Worker):
        raise SystemExit(f"{spec} is a {type(obj).__name__}, not a jobd.Worker")
    return obj


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobd", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="run a jobd.Worker object")
    w.add_argument("target", metavar="MODULE:ATTRIBUTE", help="e.g. myapp.tasks:worker")
    w.add_argument("--burst", action="store_true", help="return once no job of its types is left")
    w.add_argument("--url", help="the jobd server (overrides the Worker's own url; env JOBD_URL)")
    w.add_argument("--concurrency", type=int, help="overrides the Worker's concurrency")
    w.add_argument("--grace", type=float, help="seconds running jobs get to finish on shutdown")
    w.add_argument("--log-level", default=os.environ.get("JOBD_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per call otherwise
    worker = load(args.target)
    url = args.url or os.environ.get("JOBD_URL")
    if url:
        worker.url = url.rstrip("/")
    if args.concurrency:
        worker.concurrency = args.concurrency
    if args.grace is not None:
        worker.grace_seconds = args.grace
    processed = worker.run(burst=args.burst)
    logging.getLogger("jobd.worker").info("worker %s stopped after %d jobs", worker.worker_id, processed)
    if worker.handlers_running:
        # Their jobs are back in the queue, but their threads still run user
        # code; interpreter teardown under running threads can crash
        # (CPython stops daemon threads abruptly), so leave now, as Celery's
        # cold shutdown does.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
