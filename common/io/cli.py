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
from functools import wraps

from pyspark.sql import SparkSession

from common.core.config import Config, ConfigError, load_config

log = logging.getLogger("ev_fleet")

# Exit codes of a job run alone (spark-submit jobs/<stage>.py): documented in docs/ARCHITECTURE.md.
EXIT_CONFIG_ERROR = 2  # bad configuration or input mapping: the message names the key to set
EXIT_INPUT_MISSING = 3  # an input table a user did not expect to be missing (run the stage that writes it)
# A stage whose inputs are absent by design (a telematics-only deployment has no charger data) is
# skipped with 99: Airflow's BashOperator treats exit code 99 as "skipped" (skip_on_exit_code).
EXIT_SKIPPED = 99


class StageSkipped(Exception):
    """A stage cannot run because optional data is absent; the message says what to configure."""


def skip_reason(group: Sequence[str], writers: dict[str, str] | None = None) -> str:
    """Why a stage is skipped when no table of `group` exists.

    Parameters
    ----------
    group : sequence of str
        Catalog table names of which none exists.
    writers : dict of str to str, optional
        Table -> the stage that writes it (`common.io.stages.writers`).

    Returns
    -------
    str
        'no bronze.stations - configure inputs.stations to enable' for bronze tables, else the
        stage to run first when `writers` knows it.
    """
    names = " or ".join(group)
    bronze = [t for t in group if t.startswith("bronze.")]
    if bronze:
        keys = " or ".join(f"inputs.{t.split('.', 1)[1]}" for t in bronze)
        return f"no {names} - configure {keys} to enable"
    writer = next((writers[t] for t in group if writers and t in writers), None)
    return f"no {names} - run the {writer} stage first" if writer else f"no {names}"


def missing_inputs(spark: SparkSession, cfg: Config, requires: Sequence[Sequence[str]], writers: dict[str, str] | None = None) -> str | None:
    """Why a stage cannot run: the first group of `requires` of which no table exists, else None.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    requires : sequence of sequence of str
        A job's REQUIRES: groups of table names, one table of each must exist.
    writers : dict of str to str, optional
        Table -> the stage that writes it, named in the reason.

    Returns
    -------
    str or None
        The `skip_reason` of the first unmet group.
    """
    from common.io import tables

    for group in requires:
        if not any(tables.exists(spark, cfg, t) for t in group):
            return skip_reason(group, writers)
    return None


def require_inputs(spark: SparkSession, cfg: Config, requires: Sequence[Sequence[str]]) -> None:
    """Raise StageSkipped when a required input group is absent (each job calls it first).

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    requires : sequence of sequence of str
        The job's REQUIRES: groups of table names, one table of each must exist.

    Raises
    ------
    StageSkipped
        With the `skip_reason` of the first unmet group.
    """
    reason = missing_inputs(spark, cfg, requires)
    if reason:
        raise StageSkipped(reason)


def job_main(fn: Callable) -> Callable:
    """Entry point of a job run alone: a clear message and exit code instead of a stack trace.

    Exit codes: a skipped stage 99, a configuration error 2, a missing input table 3.

    Parameters
    ----------
    fn : callable
        The job's ``main``.

    Returns
    -------
    callable
        `fn` wrapped; other exceptions pass through.
    """
    from common.io.tables import TableNotFound

    @wraps(fn)
    def run(*args, **kwargs):
        """Call `fn`, turning StageSkipped, ConfigError and TableNotFound into SystemExit.

        Parameters
        ----------
        *args, **kwargs
            Passed to `fn`.

        Returns
        -------
        object
            What `fn` returns.

        Raises
        ------
        SystemExit
            EXIT_SKIPPED, EXIT_CONFIG_ERROR or EXIT_INPUT_MISSING, after the message on stderr.
        """
        try:
            return fn(*args, **kwargs)
        except StageSkipped as exc:
            log.warning("skipped: %s", exc)
            print(f"skipped: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_SKIPPED) from None
        except ConfigError as exc:
            log.error("configuration error: %s", exc)
            print(f"configuration error: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG_ERROR) from None
        except TableNotFound as exc:
            log.error("%s", exc)
            print(f"input missing: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_INPUT_MISSING) from None

    return run


def base_parser(job: str, description: str | None) -> argparse.ArgumentParser:
    """The options every job has: `--env`, `--conf`, `--inputs`, `--log-level`.

    Parameters
    ----------
    job : str
        Job name; the program is ``jobs/<job>.py``.
    description : str or None
        The job module's docstring; its first line is the help text.

    Returns
    -------
    argparse.ArgumentParser
    """
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
    parser.add_argument(
        "--inputs",
        action="append",
        default=[],
        metavar="YAML",
        help="dataset file (e.g. conf/datasets/twizy.yaml), repeatable: replaces inputs.* and sets the data's properties from its `settings:` (area, timezone); --conf still wins",
    )
    parser.add_argument("--log-level", default="INFO", help="Python logging level for the job's own messages")
    return parser


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr at `level`; chatty libraries (py4j, urllib3, MLflow, ...) only from WARNING.

    Parameters
    ----------
    level : str
        A logging level name; unknown names mean INFO.
    """
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
    """Parse a job's command line, set up logging and load the config (logged with secrets redacted).

    Parameters
    ----------
    job : str
        Job name.
    argv : sequence of str or None
        Arguments; None reads sys.argv.
    description : str, optional
        The job module's docstring (help text).
    add_arguments : callable, optional
        Adds the job's own options to the parser.

    Returns
    -------
    cfg : Config
    args : argparse.Namespace

    Raises
    ------
    SystemExit
        Exit code 2 on a configuration error (the message names the key).
    """
    parser = base_parser(job, description)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        cfg = load_config(args.env, args.conf, dataset_files=args.inputs)
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
    """Parse the CLI, load and validate config once, build the one SparkSession and take the run lease.

    The lakehouse's run lease (common/io/lease.py) is taken before the job writes anything and
    held until the process exits (released then, also after an exception); the pipeline's stages
    run in its process and join its lease.

    Parameters
    ----------
    job : str
        Job name (program name, lease owner).
    argv : sequence of str, optional
        Arguments; None reads sys.argv.
    description : str, optional
        The job module's docstring (help text).
    add_arguments : callable, optional
        Adds the job's own options to the parser.

    Returns
    -------
    cfg : Config
    spark : SparkSession
        With the shuffle partitions sized (`common.io.spark.size_shuffles`).
    args : argparse.Namespace

    Raises
    ------
    SystemExit
        Non-zero, naming the holder, when another run holds the lease; 2 on a configuration error.
    """
    from common.io.lease import LeaseHeld, hold_run_lease
    from common.io.spark import build_session, python_for_workers, size_shuffles

    cfg, args = parse(job, argv, description, add_arguments)
    python_for_workers()
    spark = build_session(cfg)
    size_shuffles(spark, cfg)
    if cfg.lease.enabled:
        try:
            hold_run_lease(spark, cfg, job)
        except LeaseHeld as exc:
            log.error("%s: %s", job, exc)
            raise SystemExit(f"{job}: {exc}") from None
    return cfg, spark, args


@dataclass
class StageReport:
    """Rows in/out and timing of one job run; printed and returned to the pipeline.

    Attributes
    ----------
    stage : str
        Stage (job) name.
    rows_in, rows_out, rows_quarantined : int or None
        Rows read, written and quarantined; None when the job does not count them.
    tables : dict of str to int
        Table -> Delta version written.
    status : str
        ok | skipped | failed.
    started : float
        Start time (epoch seconds, UTC).
    seconds : float or None
        Duration (s), set by `finish`.
    notes : list of str
        Skip reasons, missing optional inputs, undeclared table access.
    """

    stage: str
    rows_in: int | None = None
    rows_out: int | None = None
    rows_quarantined: int | None = None
    tables: dict[str, int] = field(default_factory=dict)
    status: str = "ok"
    started: float = field(default_factory=time.time)
    seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    def finish(self) -> StageReport:
        """Set `seconds` since `started` (0.1 s) and log the report line.

        Returns
        -------
        StageReport
            This report.
        """
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
