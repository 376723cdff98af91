"""``python -m suggestion_service [--port N] [--metrics-port M]``: run the Katib suggestion service."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType

from suggestion_service.kube_priors import SOURCE_CHOICES, make_prior_source
from suggestion_service.prior_fetch import NAMESPACES_FLAG, parse_namespaces
from suggestion_service.server import (
    DEFAULT_MAX_CONCURRENT_RPCS,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_WORKERS,
    start_server,
)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected an integer 0-65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value}: expected 0-65535 (0 = any free port)")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {value}: expected a positive integer")
    return value


def _namespaces(text: str) -> frozenset[str]:
    try:
        return parse_namespaces(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of the service."""
    p = argparse.ArgumentParser(
        prog="python -m suggestion_service",
        description="Katib suggestion service (api.v1.beta1.Suggestion): surrogate-gp, surrogate-rf, "
        "grid, random.",
    )
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0, all)")
    p.add_argument("--port", type=_port, default=6789, help="gRPC port (default: 6789, what Katib dials)")
    p.add_argument(
        "--metrics-port",
        type=_port,
        default=None,
        help="serve Prometheus /metrics on this port (default: off; the manifests use 8000)",
    )
    p.add_argument("--workers", type=_positive, default=DEFAULT_WORKERS, help="RPC worker threads")
    p.add_argument(
        "--max-concurrent-rpcs",
        type=_positive,
        default=DEFAULT_MAX_CONCURRENT_RPCS,
        help="RPCs beyond this many in flight get RESOURCE_EXHAUSTED",
    )
    p.add_argument(
        "--max-message-bytes",
        type=_positive,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest request accepted (bytes)",
    )
    p.add_argument(
        "--grace-seconds",
        type=float,
        default=float(os.environ.get("SUGGESTION_GRACE_SECONDS", "20")),
        help="on SIGTERM, wait this long for in-flight RPCs (default: 20)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    warm = p.add_argument_group("warm start (algorithm setting warm_start_experiments)")
    warm.add_argument(
        "--warm-start-source",
        choices=SOURCE_CHOICES,
        default="auto",
        help="where prior experiments are read: kubernetes (the API server, in-cluster configuration "
        "unless --kube-api-url), none (warm-start settings are rejected), auto (default: kubernetes "
        "when running in a pod with a service account, else none)",
    )
    warm.add_argument(
        NAMESPACES_FLAG,
        type=_namespaces,
        default=frozenset(),
        metavar="NS[,NS...]",
        help="namespaces besides its own (the pod's: POD_NAMESPACE or the service account's namespace "
        "file) whose experiments warm_start_experiments may name; '*' = any that RBAC allows "
        "(default: none). Set by the operator in the algorithm's katib-config entry (args): an "
        "Experiment cannot set it",
    )
    warm.add_argument(
        "--kube-api-url", default=None, help="Kubernetes API URL instead of the in-cluster one (testing)"
    )
    warm.add_argument("--kube-token-file", default=None, help="bearer token file for --kube-api-url")
    warm.add_argument("--kube-ca-file", default=None, help="CA bundle for an https --kube-api-url")
    return p


def main(argv: list[str] | None = None) -> int:
    """Start the server and block until SIGTERM/SIGINT, then drain and exit 0."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        stream=sys.stderr,
    )
    if (args.kube_token_file or args.kube_ca_file) and not args.kube_api_url:
        print("error: --kube-token-file and --kube-ca-file need --kube-api-url", file=sys.stderr)
        return 2
    try:
        prior_source = make_prior_source(
            args.warm_start_source,
            api_url=args.kube_api_url,
            token_file=args.kube_token_file,
            ca_file=args.kube_ca_file,
        )
    except (ValueError, OSError) as exc:
        print(f"error: --warm-start-source {args.warm_start_source}: {exc}", file=sys.stderr)
        return 2
    try:
        running = start_server(
            args.host,
            args.port,
            args.metrics_port,
            workers=args.workers,
            max_concurrent_rpcs=args.max_concurrent_rpcs,
            max_message_bytes=args.max_message_bytes,
            prior_source=prior_source,
            warm_start_namespaces=args.warm_start_namespaces,
        )
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # Tests and wrappers read the bound port from this line (useful with --port 0).
    print(f"listening port={running.port} metrics_port={running.metrics_port}", flush=True)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("suggestion_service").info(
            "received %s: NOT_SERVING, draining for up to %.0f s",
            signal.Signals(signum).name,
            args.grace_seconds,
        )
        running.stop(args.grace_seconds)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    running.wait()
    logging.getLogger("suggestion_service").info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
