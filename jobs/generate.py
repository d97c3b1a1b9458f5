"""Generate the synthetic fleet (raw files + ground-truth tables) — the embedded default input.

Writes raw files under <storage.root>/raw/ and truth.* Delta tables (see docs/GENERATOR.md).
Sizes, region, sampling and seed come from the `generator` config section. Idempotent: when the
lakehouse already holds data generated from the same generator config, nothing is rewritten
(use --force to regenerate).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.core.catalog import TABLES
from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main
from common.io.landing import raw_paths
from common.synthetic.generator import (
    build_world,
    network_frame,
    simulate,
    truth_charger_outages,
    truth_charging_sites,
    truth_frames,
    truth_rollouts,
    write_raw_masters,
    write_raw_network,
    write_raw_rollouts,
    write_raw_telemetry,
)

log = logging.getLogger("ev_fleet.generate")
# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = ()
OUTPUTS: tuple[str, ...] = ("raw.files", *(name for name in TABLES if name.startswith("truth.")))
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ()
CONFIG_PROPERTY = "evfa.generator.config_sha256"


def generator_fingerprint(cfg: Config) -> str:
    return hashlib.sha256(cfg.generator.model_dump_json().encode()).hexdigest()[:16]


def already_generated(spark: SparkSession, cfg: Config) -> bool:
    # truth.points is written first and tagged last: a killed run leaves no matching tag
    props = tables.properties(spark, cfg, "truth.points")
    return props is not None and props.get(CONFIG_PROPERTY) == generator_fingerprint(cfg)


@dataclass
class GenerateResult:
    """What `generate` wrote: telemetry rows in the raw files, rows per truth table, raw folders."""

    telemetry_rows: int
    truth_tables: dict[str, int]
    raw_paths: dict[str, str]


def generate(spark: SparkSession, cfg: Config) -> GenerateResult:
    """Simulate the fleet and network; write the raw files and the truth.* tables (overwrite: idempotent)."""
    g = cfg.generator
    world = build_world(g)
    raw = raw_paths(cfg)
    counts: dict[str, int] = {}

    def put(name: str, df: DataFrame) -> DataFrame:
        tables.write(df, cfg, f"truth.{name}", mode="overwrite")
        written = tables.read(spark, cfg, f"truth.{name}")
        counts[name] = written.count()
        return written

    # the single expensive pass (telemetry + the truth behind every row), read back by every later step
    tables.write(simulate(spark, world), cfg, "truth.points", mode="overwrite")
    points = tables.read(spark, cfg, "truth.points")
    n_rows = write_raw_telemetry(points, world, raw["telematics"])
    write_raw_masters(spark, world, raw)
    for name, df in truth_frames(spark, world, points).items():
        put(name, df)
    charges = tables.read(spark, cfg, "truth.charging_events")  # read back: rebuilding it would scan truth.points again
    put("charging_sites", truth_charging_sites(spark, world, charges))
    put("charger_outages", truth_charger_outages(spark, world))
    if g.network:
        write_raw_network(put("network_records", network_frame(spark, world, charges)), raw)
    if g.network and len(world.rollouts):
        put("rollouts", truth_rollouts(spark, world))
        write_raw_rollouts(spark, world, raw["rollouts"])
    written = {k: v for k, v in raw.items() if (g.network and (k != "rollouts" or len(world.rollouts))) or k in ("telematics", "vehicles")}
    return GenerateResult(telemetry_rows=n_rows, truth_tables=counts, raw_paths=written)


def run_generate(spark: SparkSession, cfg: Config, force: bool = False) -> StageReport:
    report = StageReport("generate")
    g = cfg.generator
    if not force and already_generated(spark, cfg):
        msg = f"synthetic data for this generator config already present ({generator_fingerprint(cfg)}); nothing to do"
        log.info(msg)
        report.notes.append(msg)
        report.rows_out = tables.first_row(tables.read(spark, cfg, "truth.points").agg(F.sum("copies")))[0]
        return report.finish()
    log.info("generating %d vehicles x %d days from %s (seed %d)", g.vehicles, g.days, g.start_date, g.seed)
    t0 = time.time()
    result = generate(spark, cfg)
    tables.set_properties(spark, cfg, "truth.points", properties={CONFIG_PROPERTY: generator_fingerprint(cfg)})
    report.rows_in = 0
    report.rows_out = result.telemetry_rows
    report.notes.append(f"{result.telemetry_rows / max(time.time() - t0, 1e-9):,.0f} telemetry rows/s")
    for name, path in result.raw_paths.items():
        log.info("raw %-18s %s", name, path)
    return report.finish()


def add_arguments(parser) -> None:
    parser.add_argument("--force", action="store_true", help="regenerate even if data for the same config exists")


@job_main
def main(argv=None) -> StageReport:
    cfg, spark, args = bootstrap("generate", argv, __doc__, add_arguments)
    return run_generate(spark, cfg, force=args.force)


if __name__ == "__main__":
    main()
