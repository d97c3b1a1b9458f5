"""Compare every Delta table of two lakehouses row for row (e.g. before and after a refactor).

    python -m bench.compare_tables LEFT_ROOT RIGHT_ROOT [--layers silver gold restricted] [--ignore-columns c1,c2]

For each catalog table of the layers that exists on either side it prints: rows left / right,
whether the schemas match, and rows only on the left / only on the right (``exceptAll``, so
duplicate rows count). The exit code is 1 when any table differs. Columns that are different by
construction (e.g. a run id or a model version from another tracking store) can be ignored by
name; the output lists them.
"""

from __future__ import annotations

import argparse
import sys

from common.core.catalog import TABLES
from common.core.config import load_config
from common.io import tables
from common.io.spark import build_session


def compare(spark, left_cfg, right_cfg, name: str, ignore: set[str]) -> tuple[bool, str]:
    have = (tables.exists(spark, left_cfg, name), tables.exists(spark, right_cfg, name))
    if have != (True, True):
        return have == (False, False), f"{name:<34} {'missing on the left' if not have[0] else ''}{'missing on the right' if not have[1] else ''}"
    left, right = tables.read(spark, left_cfg, name), tables.read(spark, right_cfg, name)
    left = left.drop(*[c for c in left.columns if c in ignore])
    right = right.drop(*[c for c in right.columns if c in ignore])
    same_schema = [(f.name, f.dataType) for f in left.schema.fields] == [(f.name, f.dataType) for f in right.schema.fields]
    if not same_schema:
        return False, f"{name:<34} schema differs: {left.schema.simpleString()} vs {right.schema.simpleString()}"
    n_left, n_right = left.count(), right.count()
    only_left, only_right = left.exceptAll(right).count(), right.exceptAll(left).count()
    ok = only_left == 0 and only_right == 0
    return ok, f"{name:<34} rows {n_left:>10,} / {n_right:>10,}   only left {only_left:>7,}   only right {only_right:>7,}   {'identical' if ok else 'DIFFERENT'}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("left_root")
    ap.add_argument("right_root")
    ap.add_argument("--layers", nargs="+", default=["silver", "gold", "restricted"])
    ap.add_argument("--ignore-columns", default="", help="comma-separated column names left out of the comparison")
    ap.add_argument("--env", default="local")
    args = ap.parse_args(argv)
    ignore = {c for c in args.ignore_columns.split(",") if c}

    def cfg_for(root: str):
        return load_config(args.env, [f"storage.root={root}", "storage.restricted_root=null", "spark.ui_enabled=false", "spark.progress_bar=false"])

    left_cfg, right_cfg = cfg_for(args.left_root), cfg_for(args.right_root)
    spark = build_session(left_cfg)
    names = sorted(n for n, t in TABLES.items() if t.layer in args.layers)
    print(f"comparing {len(names)} catalog tables of {', '.join(args.layers)}: {args.left_root} vs {args.right_root}")
    if ignore:
        print(f"columns ignored: {', '.join(sorted(ignore))}")
    results = [compare(spark, left_cfg, right_cfg, n, ignore) for n in names]
    for _, line in results:
        print(line)
    differing = sum(not ok for ok, _ in results)
    print(f"{len(results) - differing} of {len(results)} tables identical" + (f", {differing} differ" if differing else ""))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
