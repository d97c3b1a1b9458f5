"""The stage graph: which stage reads and writes which table, derived from the jobs' declarations.

Each job module declares ``INPUTS`` (tables it reads when they exist), ``OUTPUTS`` (tables it
writes) and ``REQUIRES`` (input groups of which one table must exist, else the stage is skipped),
all names of the table catalog (common/core/catalog.py). The pipeline orders the stages from
these declarations, and checks after every stage that it read and wrote nothing it did not
declare (``undeclared_access``), so the declarations cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pyspark.sql import SparkSession

from common.core.catalog import names
from common.core.config import POSITION_TRACES, Config, ConfigError
from common.io import tables
from common.io.cli import StageReport, missing_inputs

RUNS_TABLE = "audit.stage_runs"
# Written by every stage run through the pipeline or a job's lease; not a stage's own output.
BOOKKEEPING = frozenset({RUNS_TABLE, "audit.run_lease"})


@dataclass(frozen=True)
class Stage:
    """One job of the pipeline and the catalog tables it reads and writes.

    Attributes
    ----------
    name : str
        Stage (job) name.
    inputs : tuple of str
        INPUTS: tables it reads when they exist.
    outputs : tuple of str
        OUTPUTS: tables it writes.
    requires : tuple of tuple of str
        REQUIRES: groups of which one table must exist, else the stage is skipped.

    Raises
    ------
    KeyError
        A name is not in the table catalog.
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    requires: tuple[tuple[str, ...], ...] = field(default=())

    def __post_init__(self) -> None:
        names(*self.inputs, *self.outputs, *(t for group in self.requires for t in group))


def writers(stages: Sequence[Stage]) -> dict[str, str]:
    """Table -> the stage that writes it; a table written by two stages is an error.

    Parameters
    ----------
    stages : sequence of Stage

    Returns
    -------
    dict of str to str

    Raises
    ------
    ValueError
        Two stages declare the same output.
    """
    out: dict[str, str] = {}
    for stage in stages:
        for table in stage.outputs:
            if table in out:
                raise ValueError(f"{table} is declared as an output of both {out[table]} and {stage.name}")
            out[table] = stage.name
    return out


def upstream(stages: Sequence[Stage]) -> dict[str, set[str]]:
    """Stage -> the stages that write one of its inputs.

    Parameters
    ----------
    stages : sequence of Stage

    Returns
    -------
    dict of str to set of str
        Stage name -> names of the other stages it depends on.
    """
    by_table = writers(stages)
    return {s.name: {by_table[t] for t in s.inputs if t in by_table and by_table[t] != s.name} for s in stages}


def ordered(stages: Sequence[Stage]) -> list[Stage]:
    """Stages in dependency order: each after every stage writing one of its inputs.

    Among stages ready at the same time, the order given (a stable topological sort).

    Parameters
    ----------
    stages : sequence of Stage

    Returns
    -------
    list of Stage

    Raises
    ------
    ValueError
        The stages' inputs and outputs form a cycle.
    """
    deps = upstream(stages)
    done: set[str] = set()
    out: list[Stage] = []
    pending = list(stages)
    while pending:
        ready = next((s for s in pending if deps[s.name] <= done), None)
        if ready is None:
            raise ValueError(f"cycle in the stage graph among {', '.join(s.name for s in pending)}")
        out.append(ready)
        done.add(ready.name)
        pending.remove(ready)
    return out


def parse_names(stages: Sequence[Stage], value: str | None) -> list[str]:
    """Stage names of a comma-separated CLI value.

    Parameters
    ----------
    stages : sequence of Stage
    value : str or None
        E.g. ``clean,kpis``.

    Returns
    -------
    list of str
        In the order given; empty for None.

    Raises
    ------
    SystemExit
        An unknown name; the message lists the known ones.
    """
    known = [s.name for s in stages]
    chosen = [v.strip() for v in (value or "").split(",") if v.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise SystemExit(f"unknown stage(s) {', '.join(unknown)}; stages are: {', '.join(known)}")
    return chosen


def select(stages: Sequence[Stage], only: str | None, from_stage: str | None, skip: str | None, generate: bool, maintain: bool = False) -> list[Stage]:
    """Stages to run in the given (dependency) order: ``--only``, then ``--from``, minus ``--skip``.

    Parameters
    ----------
    stages : sequence of Stage
        In dependency order.
    only, from_stage, skip : str or None
        The CLI values (comma-separated stage names; `from_stage` one name).
    generate : bool
        Keep the ``generate`` stage (only when no input dataset is configured).
    maintain : bool
        Keep the ``maintain`` stage (``maintain.enabled``); ``--only maintain`` runs it regardless.

    Returns
    -------
    list of Stage

    Raises
    ------
    SystemExit
        An unknown stage name.
    """
    chosen = list(stages)
    if only:
        wanted = set(parse_names(stages, only))
        chosen = [s for s in chosen if s.name in wanted]
    if from_stage:
        parse_names(stages, from_stage)
        chosen_names = [s.name for s in chosen]
        chosen = chosen[chosen_names.index(from_stage) :] if from_stage in chosen_names else []
    skipped = set(parse_names(stages, skip))
    maintain = maintain or (bool(only) and "maintain" in parse_names(stages, only))
    return [s for s in chosen if s.name not in skipped and (generate or s.name != "generate") and (maintain or s.name != "maintain")]


def why_skipped(stage: Stage, spark: SparkSession, cfg: Config, skipped: dict[str, str], by_table: dict[str, str]) -> str | None:
    """Reason the stage cannot run (its REQUIRES groups), or None when it can.

    Parameters
    ----------
    stage : Stage
    spark : SparkSession
    cfg : Config
    skipped : dict of str to str
        Stages of this run skipped so far -> their reason.
    by_table : dict of str to str
        Table -> the stage that writes it (`writers`).

    Returns
    -------
    str or None
        The reason, naming the root cause when an upstream stage of this run was skipped.
    """
    reason = missing_inputs(spark, cfg, stage.requires, by_table)
    if reason is None:
        return None
    upstream = [by_table[t] for group in stage.requires for t in group if by_table.get(t) in skipped]
    return f"{reason} ({upstream[0]} was skipped: {skipped[upstream[0]]})" if upstream else reason


def undeclared_access(stage: Stage, access: dict[str, set[str]]) -> list[str]:
    """Notes for tables the stage read or wrote without declaring them (empty when it kept to them).

    Parameters
    ----------
    stage : Stage
    access : dict of str to set of str
        ``{"read": {...}, "written": {...}}`` from `common.io.tables.recording`.

    Returns
    -------
    list of str
    """
    notes = []
    read = access["read"] - set(stage.inputs) - set(stage.outputs) - BOOKKEEPING
    written = access["written"] - set(stage.outputs) - BOOKKEEPING
    if read:
        notes.append(f"undeclared input(s) of {stage.name}: {', '.join(sorted(read))}")
    if written:
        notes.append(f"undeclared output(s) of {stage.name}: {', '.join(sorted(written))}")
    return notes


def close_report(stage: Stage, report: StageReport, access: dict[str, set[str]], spark: SparkSession, cfg: Config) -> StageReport:
    """Name the report after its stage, note undeclared table access, add the Delta versions it lacks.

    Parameters
    ----------
    stage : Stage
    report : StageReport
        What the job returned; changed in place (finished if it was not).
    access : dict of str to set of str
        Tables read and written during the stage (`common.io.tables.recording`).
    spark : SparkSession
    cfg : Config

    Returns
    -------
    StageReport
        `report`, with the version of each declared output it did not report itself.
    """
    report.stage = stage.name
    report.notes += undeclared_access(stage, access)
    if report.seconds is None:
        report.finish()
    for table in stage.outputs:
        if table not in report.tables and not table.startswith("raw.") and tables.exists(spark, cfg, table):
            version = tables.version(spark, cfg, table)
            if version is not None:  # None only if the table vanished since exists() (same isDeltaTable check)
                report.tables[table] = version
    return report


def report_line(report: StageReport) -> str:
    """Rows in/out/quarantined of a finished stage, and its skip or undeclared-access notes.

    Parameters
    ----------
    report : StageReport

    Returns
    -------
    str
        One line.
    """
    notes = "".join(f"; {n}" for n in report.notes if n.startswith(("skipped", "undeclared")))
    return f"(rows in={report.rows_in} out={report.rows_out} quarantined={report.rows_quarantined}){notes}"


def record_run(spark: SparkSession, cfg: Config, run_id: str, reports: list[StageReport], recorded: int) -> int:
    """Append the audit.stage_runs rows of stages not recorded yet (status, reason, seconds, rows).

    The report reads the latest run to say why a section has no data.

    Parameters
    ----------
    spark : SparkSession
    cfg : Config
    run_id : str
        The pipeline run's id.
    reports : list of StageReport
        Every stage of the run so far, in order.
    recorded : int
        How many of `reports` are already recorded.

    Returns
    -------
    int
        How many are recorded now (``len(reports)``).
    """
    now = datetime.now(timezone.utc)
    rows = [
        (run_id, now, i, r.stage, r.status, "; ".join(n for n in r.notes if r.status != "ok" or n.startswith("skipped")) or None, float(r.seconds or 0.0), r.rows_in, r.rows_out)
        for i, r in enumerate(reports)
        if i >= recorded
    ]
    if rows:
        schema = "run_id string, finished_at timestamp, position int, stage string, status string, reason string, seconds double, rows_in long, rows_out long"
        tables.write(spark.createDataFrame(rows, schema), cfg, RUNS_TABLE, mode="append", comment="One row per stage per pipeline run: ok / skipped (with the reason) / failed")
    return len(reports)


def _count(x: int | None) -> str:
    return f"{x:,}" if isinstance(x, int) else "-"


def summary_table(reports: list[StageReport]) -> str:
    """One line per stage: status, rows in/out/quarantined, seconds, output tables and versions.

    Parameters
    ----------
    reports : list of StageReport

    Returns
    -------
    str
        The table with a header, skip notes on their own lines.
    """
    lines = [f"{'stage':<12} {'status':<8} {'rows in':>12} {'rows out':>12} {'quarant.':>9} {'seconds':>8}  output table (Delta version)"]
    lines.append("-" * 110)
    for r in reports:
        outs = ", ".join(f"{t} (v{v})" for t, v in r.tables.items()) or "-"
        if r.status != "ok":
            outs = f"{r.status}: {'; '.join(r.notes)}"
        lines.append(f"{r.stage:<12} {r.status:<8} {_count(r.rows_in):>12} {_count(r.rows_out):>12} {_count(r.rows_quarantined):>9} {r.seconds or 0:>8.1f}  {outs}")
        lines += [f"{'':<22}{n}" for n in r.notes if r.status == "ok" and n.startswith("skipped")]
    return "\n".join(lines)


def where_things_are(cfg: Config) -> str:
    """Where a user finds the report, the extracts, the tables, the personal data and the models.

    Parameters
    ----------
    cfg : Config

    Returns
    -------
    str
        Lines of resolved paths and the MLflow UI command.
    """
    try:
        public, restricted = cfg.export.folders(cfg.storage)
        exports = f"Exports: {public}/latest  (extracts with personal data: {restricted}/latest)"
    except ConfigError as exc:  # the export stage refuses this config and says why
        exports = f"Exports: {exc}"
    return "\n".join(
        [
            "",
            f"Report:  {cfg.storage.resolve(cfg.report.output_dir)}/latest/index.html",
            exports,
            f"Tables:  {cfg.storage.resolve(cfg.storage.root)}  (bronze/ silver/ gold/ quarantine/ truth/ audit/)",
            f"Restricted personal data: {cfg.storage.resolve(cfg.storage.restricted)}  (residences, position traces: {', '.join(sorted(POSITION_TRACES))})",
            f"MLflow:  make mlflow-ui   -> http://127.0.0.1:5000  (tracking store {cfg.mlflow.tracking_uri})",
        ]
    )
