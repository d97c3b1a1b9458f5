"""Generate the synthetic fleet (raw files + ground-truth tables) — the embedded default input.

Writes raw files under <storage.root>/raw/ and truth.* Delta tables (see docs/GENERATOR.md).
Sizes, region, sampling and seed come from the `generator` config section.
"""

from __future__ import annotations

import logging
import time

from common.cli import StageReport, bootstrap
from common.generator import generate

log = logging.getLogger("ev_fleet.generate")


def main(argv=None) -> StageReport:
    cfg, spark, _ = bootstrap("generate", argv, __doc__)
    report = StageReport("generate")
    g = cfg.generator
    log.info("generating %d vehicles x %d days from %s (seed %d)", g.vehicles, g.days, g.start_date, g.seed)
    t0 = time.time()
    result = generate(spark, cfg)
    report.rows_in = 0
    report.rows_out = result.telemetry_rows
    report.tables = {f"truth.{k}": v for k, v in result.truth_tables.items()}
    report.notes.append(f"{result.telemetry_rows / max(time.time() - t0, 1e-9):,.0f} telemetry rows/s")
    for name, path in result.raw_paths.items():
        log.info("raw %-18s %s", name, path)
    return report.finish()


if __name__ == "__main__":
    main()
