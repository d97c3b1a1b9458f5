"""Compare every Delta table of two lakehouses row for row (e.g. before and after a refactor).

    python -m bench.compare_tables LEFT_ROOT RIGHT_ROOT [--layers silver gold restricted] [--ignore-columns c1,c2]
                                   [--renamed OLD=NEW ...]

For each catalog table of the layers that exists on either side it prints: rows left / right,
whether the schemas match, and rows only on the left / only on the right (``exceptAll``, so
duplicate rows count). The exit code is 1 when any table differs. Columns that are different by
construction (e.g. a run id or a model version from another tracking store) can be ignored by
name; the output lists them. A table the right side's catalog renamed (``--renamed
gold.charging_events=silver.charging_events``) is read on the left from its old path,
``<LEFT_ROOT>/<old layer>/<old name>``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.core.catalog import TABLES
from common.core.config import load_config
from common.io import tables
from common.io.spark import build_session


def _old_path(cfg, old_name: str) -> str:
    layer, table = old_name.split(".", 1)
    return str(Path(cfg.storage.root) / layer / table)


def compare(spark, left_cfg, right_cfg, name: str, ignore: set[str], old_name: str | None = None) -> tuple[bool, str]:
    left_exists = (Path(_old_path(left_cfg, old_name)) / "_delta_log").is_dir() if old_name else tables.exists(spark, left_cfg, name)
    have = (left_exists, tables.exists(spark, right_cfg, name))
    label = f"{old_name} -> {name}" if old_name else name
    if have != (True, True):
        return have == (False, False), f"{label:<34} {'missing on the left' if not have[0] else ''}{'missing on the right' if not have[1] else ''}"
    left = spark.read.format("delta").load(_old_path(left_cfg, old_name)) if old_name else tables.read(spark, left_cfg, name)
    right = tables.read(spark, right_cfg, name)
    left = left.drop(*[c for c in left.columns if c in ignore])
    right = right.drop(*[c for c in right.columns if c in ignore])
    same_schema = [(f.name, f.dataType) for f in left.schema.fields] == [(f.name, f.dataType) for f in right.schema.fields]
    if not same_schema:
        return False, f"{name:<34} schema differs: {left.schema.simpleString()} vs {right.schema.simpleString()}"
    n_left, n_right = left.count(), right.count()
    only_left, only_right = left.exceptAll(right).count(), right.exceptAll(left).count()
    ok = only_left == 0 and only_right == 0
    return ok, f"{label:<34} rows {n_left:>10,} / {n_right:>10,}   only left {only_left:>7,}   only right {only_right:>7,}   {'identical' if ok else 'DIFFERENT'}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("left_root")
    ap.add_argument("right_root")
    ap.add_argument("--layers", nargs="+", default=["silver", "gold", "restricted"])
    ap.add_argument("--ignore-columns", default="", help="comma-separated column names left out of the comparison")
    ap.add_argument("--renamed", nargs="*", default=[], metavar="OLD=NEW", help="tables renamed between left and right (catalog names)")
    ap.add_argument("--env", default="local")
    args = ap.parse_args(argv)
    ignore = {c for c in args.ignore_columns.split(",") if c}
    old_of = {new: old for old, new in (pair.split("=", 1) for pair in args.renamed)}

    def cfg_for(root: str):
        return load_config(args.env, [f"storage.root={root}", "storage.restricted_root=null", "spark.ui_enabled=false", "spark.progress_bar=false"])

    left_cfg, right_cfg = cfg_for(args.left_root), cfg_for(args.right_root)
    spark = build_session(left_cfg)
    names = sorted(n for n, t in TABLES.items() if t.layer in args.layers)
    print(f"comparing {len(names)} catalog tables of {', '.join(args.layers)}: {args.left_root} vs {args.right_root}")
    if ignore:
        print(f"columns ignored: {', '.join(sorted(ignore))}")
    results = [compare(spark, left_cfg, right_cfg, n, ignore, old_of.get(n)) for n in names]
    for _, line in results:
        print(line)
    differing = sum(not ok for ok, _ in results)
    print(f"{len(results) - differing} of {len(results)} tables identical" + (f", {differing} differ" if differing else ""))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
