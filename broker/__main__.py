"""``python -m broker``: run the broker in the foreground (same options as ``flows broker``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from broker.config import BrokerConfig, ConfigError
from broker.node import run_broker


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m broker",
        description="Run the flows Kafka-compatible broker in the foreground.",
    )
    parser.add_argument("--config", help="a Kafka server.properties file")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set one config (repeatable), e.g. --override num.partitions=3",
    )
    parser.add_argument("--listeners", help="e.g. PLAINTEXT://127.0.0.1:9092 (port 0: any)")
    parser.add_argument("--advertised-listeners", help="e.g. PLAINTEXT://myhost:9092")
    parser.add_argument("--log-dirs", help="comma-separated data directories")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = BrokerConfig.from_sources(
            args.config,
            args.override,
            listeners=args.listeners,
            advertised_listeners=args.advertised_listeners,
            log_dirs=args.log_dirs,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_broker(config, metrics_port=args.metrics_port)


if __name__ == "__main__":
    sys.exit(main())
