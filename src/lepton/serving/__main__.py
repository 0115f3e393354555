"""``python -m lepton.serving``: one replica, the contract the control plane starts.

    python -m lepton.serving --host 127.0.0.1 --port P [--reuse-port]
        (--model-dir DIR | --photon FILE.py:Class | --photon-dir DIR --entry Class)
        [--name NAME] [--max-batch-size N] [--max-wait-ms F] [--timeout-s F]
        [--max-queue N] [--max-body-bytes N] [--public] [--traffic-interval-s F]

Accepted tokens come from ``LEPTON_REPLICA_TOKEN_HASHES`` (sha256 hex digests, comma-separated).
Prints ``ready http://HOST:PORT`` once serving, then a ``lepton-traffic {...}`` line of its
counters every ``--traffic-interval-s`` (5 s) when they changed (``serving/traffic.py``); exits 0
after a drain on SIGTERM, and 2 with a message on stderr when the model or photon cannot load.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lepton.limits import DEFAULT_MAX_ROWS

__all__ = ["main"]

TOKEN_HASHES_ENV = "LEPTON_REPLICA_TOKEN_HASHES"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lepton.serving", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, required=True, help="port to listen on (0: any free one)")
    p.add_argument("--reuse-port", action="store_true", help="share the port (SO_REUSEPORT)")
    p.add_argument(
        "--own-port",
        action="store_true",
        help="also listen on a free port of this replica's own, named on the ready line "
        "(the gateway's way to this replica alone)",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model-dir", type=Path, help="an unpacked model artifact")
    what.add_argument("--photon", help="a photon as FILE.py:Class")
    what.add_argument("--photon-dir", type=Path, help="an unpacked photon package")
    p.add_argument("--entry", help="the photon class in --photon-dir")
    p.add_argument("--name", help="the model's name (V2 protocol); default: the folder's name")
    p.add_argument("--max-batch-size", type=int, help="most requests per model call")
    p.add_argument("--max-wait-ms", type=float, help="wait for a batch to fill (default 0)")
    p.add_argument("--timeout-s", type=float, help="seconds a call may run once started")
    p.add_argument("--max-queue", type=int, default=1024, help="queued requests before 503")
    p.add_argument("--max-body-bytes", type=int, default=64 * 1024**2, help="413 above this")
    p.add_argument(
        "--max-rows",
        type=int,
        default=DEFAULT_MAX_ROWS,
        help="most rows a /predict or /explain request may carry (413 above)",
    )
    p.add_argument("--public", action="store_true", help="serve without a token")
    p.add_argument(
        "--traffic-interval-s",
        type=float,
        default=5.0,
        help="seconds between traffic reports on stdout (0: none)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from lepton.errors import LeptonError
    from lepton.serving.auth import parse_hashes
    from lepton.serving.runner import ReplicaConfig, bind, fail, model_app, photon_app, serve

    if args.max_batch_size is not None and args.max_batch_size < 1:
        return fail(f"--max-batch-size must be at least 1, got {args.max_batch_size}")
    if args.max_rows < 1:
        return fail(f"--max-rows must be at least 1, got {args.max_rows}")
    # The supervisor hands the accepted hashes over in the environment (never in argv, which
    # other users can read from /proc).
    from lepton.settings import Settings

    settings = Settings.from_env()
    raw = settings.replica_token_hashes
    try:
        hashes = None if args.public else parse_hashes(raw)
    except LeptonError as exc:
        return fail(exc.message, exc.fix)
    if hashes is not None and not hashes:
        return fail(
            f"no token would be accepted: {TOKEN_HASHES_ENV} is empty",
            f"set {TOKEN_HASHES_ENV} to the tokens' sha256 digests, or pass --public",
        )
    config = ReplicaConfig(
        host=args.host,
        port=args.port,
        reuse_port=args.reuse_port,
        name=args.name,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        timeout_s=args.timeout_s,
        max_queue=args.max_queue,
        max_body_bytes=args.max_body_bytes,
        max_rows=args.max_rows,
        token_hashes=hashes,
        traffic_interval_s=args.traffic_interval_s,
    )
    try:
        if args.model_dir is not None:
            app = model_app(args.model_dir, config)
        else:
            from lepton.photon.package import load_class, load_package

            if args.photon is not None:
                file, _, cls_name = args.photon.rpartition(":")
                if not file:
                    return fail(f"--photon {args.photon!r} is not FILE.py:Class")
                cls = load_class(Path(file), cls_name)
            else:
                cls, _ = load_package(args.photon_dir, args.entry)
            app = photon_app(cls(), config)
        sock = bind(config.host, config.port, reuse_port=config.reuse_port)
        # On a Ray node its own port listens on the node's address, for a gateway elsewhere.
        own = bind(settings.node_ip or config.host, 0) if args.own_port else None
    except LeptonError as exc:
        return fail(exc.message, exc.fix)
    except Exception as exc:  # the author's init() or a broken model: say what, not a traceback
        logging.getLogger("lepton.serving").debug("load failed", exc_info=True)
        return fail(
            f"cannot load: {type(exc).__name__}: {exc}", "fix the model or photon and retry"
        )
    serve(
        app,
        sock,
        own=own,
        drain_s=config.drain_s,
        traffic_interval_s=config.traffic_interval_s,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
