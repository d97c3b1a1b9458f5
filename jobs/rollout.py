"""Rollout evaluation: did a change to sites (firmware, replacement, maintenance contract) change
their fault rate or uptime?

Reads:  bronze.rollouts (the changes: site or charger, time, change type), silver.port_status_intervals
        (faults, observed port-hours and uptime per site; written by jobs/reliability.py).
Writes: gold.rollout_effects      per source, change type and outcome (fault_rate, uptime_pct): the
                                  difference-in-differences effect against never-treated sites
                                  (rate ratio / percentage points) with its CI, SE clustered by
                                  site, p-value and the pre-trend test's p-value; a row with the
                                  reason where there was not enough to estimate.
        gold.rollout_event_study  the same per period relative to the rollout (-1 the reference).
Definitions: common/network/rollout.py; settings: the `rollout` section of the config
(docs/CONFIG.md); what the figures mean and do not mean: docs/NETWORK.md.

    python -m jobs.rollout --env local
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/rollout.py: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession

from common.core.config import Config
from common.io import tables
from common.io.cli import StageReport, bootstrap, job_main, require_inputs
from common.network import rollout as ro

ROLLOUTS = "bronze.rollouts"
INTERVALS = "silver.port_status_intervals"
EFFECTS = "gold.rollout_effects"
EVENTS = "gold.rollout_event_study"

# Catalog tables read and written (common/core/catalog.py); the pipeline orders stages by them.
INPUTS: tuple[str, ...] = (ROLLOUTS, INTERVALS)
OUTPUTS: tuple[str, ...] = (EFFECTS, EVENTS)
# Input groups of which at least one table must exist; otherwise the stage is skipped (common.io.cli).
REQUIRES: tuple[tuple[str, ...], ...] = ((ROLLOUTS,), (INTERVALS,))


def _frame(spark: SparkSession, pdf, schema: str):
    if pdf.empty:
        return spark.createDataFrame([], schema)
    # None, not NaN, for what was not estimated: a NaN in a double column reads as a number.
    return spark.createDataFrame(pdf.astype(object).where(pdf.notna(), None), schema)


def run_rollout(spark: SparkSession, cfg: Config) -> StageReport:
    """Write gold.rollout_effects and gold.rollout_event_study from the rollouts and the status intervals."""
    report = StageReport(stage="rollout")
    params = cfg.rollout
    rollouts = tables.read(spark, cfg, ROLLOUTS)
    intervals = tables.read(spark, cfg, INTERVALS)
    panel = ro.site_panel(intervals, params).toPandas()  # bounded: one row per site and period (weeks by default)
    matches = ro.rollout_matches(rollouts, intervals)
    treated = ro.treated_sites(matches, intervals, params).toPandas()  # bounded: one row per site and change type
    report.rows_in = len(panel)
    n_rows, n_matched, n_pairs = rollouts.count(), matches.select("rollout_row").distinct().count(), matches.count()
    if n_rows > n_matched:
        report.notes.append(f"{n_rows - n_matched} of {n_rows} rollout row(s) name no station or charger a status source observes: not evaluated")
    if n_pairs > len(treated):
        report.notes.append(f"{n_pairs - len(treated)} rollout(s) repeat a change type on a site already given it: the first counts")
    effects, events = ro.evaluate_rollouts(panel, treated, params)
    report.tables[EFFECTS] = tables.write(_frame(spark, effects, ro.EFFECTS_SCHEMA), cfg, EFFECTS).version
    report.tables[EVENTS] = tables.write(_frame(spark, events, ro.EVENT_SCHEMA), cfg, EVENTS).version
    report.rows_out = len(effects)
    for r in effects.itertuples():
        fmt = lambda v: "n/a" if v is None or v != v else f"{v:.3g}"  # noqa: E731 - not estimated: None
        head = f"{r.source_name} {r.change_type} {r.outcome}"
        if fmt(r.estimate) == "n/a":
            report.notes.append(f"{head}: {r.note}")
        else:
            report.notes.append(
                f"{head}: {fmt(r.estimate)} ({fmt(r.ci_low)}-{fmt(r.ci_high)}), p {fmt(r.p_value)}, "
                f"{r.n_treated_units} treated vs {r.n_control_units} control sites, pre-trend p {fmt(r.pretrend_p_value)}"
            )
    if effects.empty:
        report.notes.append("no rollout on a site any status source observes: nothing to evaluate")
    return report.finish()


@job_main
def main(argv: list[str] | None = None) -> StageReport:
    cfg, spark, _args = bootstrap("rollout", argv, __doc__)
    require_inputs(spark, cfg, REQUIRES)
    return run_rollout(spark, cfg)


if __name__ == "__main__":
    main()
