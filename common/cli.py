"""Shared command line for every job: `--env`, repeatable `--conf key=value`, `--help` with defaults.

    cfg, spark, args = bootstrap("clean", argv, description=__doc__)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from common.config import Config, ConfigError, load_config

log = logging.getLogger("ev_fleet")


def base_parser(job: str, description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"jobs/{job}.py",
        description=(description or "").strip().splitlines()[0] if description else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--env", default="local", help="config environment: conf/<env>.yaml over conf/base.yaml")
    parser.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --conf generator.vehicles=100 (repeatable)",
    )
    parser.add_argument("--log-level", default="INFO", help="Python logging level for the job's own messages")
    return parser


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "urllib3", "alembic", "mlflow.store", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def parse(
    job: str,
    argv: Sequence[str] | None,
    description: str | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[Config, argparse.Namespace]:
    parser = base_parser(job, description)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        cfg = load_config(args.env, args.conf)
    except ConfigError as exc:
        parser.exit(2, f"{parser.prog}: configuration error: {exc}\n")
    # The effective config once per run (reproducibility), with credential-like values masked.
    log.info("%s: config (env %s, secrets redacted): %s", job, args.env, json.dumps(cfg.redacted(), sort_keys=True))
    return cfg, args


def bootstrap(
    job: str,
    argv: Sequence[str] | None = None,
    description: str | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[Config, SparkSession, argparse.Namespace]:
    """Parse the CLI, load and validate config once, and build the one SparkSession."""
    from common.spark import build_session, python_for_workers, size_shuffles

    cfg, args = parse(job, argv, description, add_arguments)
    python_for_workers()
    spark = build_session(cfg)
    size_shuffles(spark, cfg)
    return cfg, spark, args


@dataclass
class StageReport:
    """Rows in/out and timing of one job run; printed and returned to the pipeline."""

    stage: str
    rows_in: int | None = None
    rows_out: int | None = None
    rows_quarantined: int | None = None
    tables: dict[str, int] = field(default_factory=dict)  # table -> Delta version written
    started: float = field(default_factory=time.time)
    seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    def finish(self) -> StageReport:
        self.seconds = round(time.time() - self.started, 1)
        log.info(
            "stage %s done in %.1fs: rows in=%s out=%s quarantined=%s tables=%s",
            self.stage,
            self.seconds,
            self.rows_in,
            self.rows_out,
            self.rows_quarantined,
            self.tables,
        )
        return self
