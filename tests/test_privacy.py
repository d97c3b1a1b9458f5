"""coarsen_location / coarsen_point: personal positions leave the restricted store only coarsened."""

from __future__ import annotations

import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F

from common.spatial.privacy import coarsen_location, coarsen_point, coarsen_where


def test_coarsen_location_snaps_to_cell_centres(spark):
    # two homes ~60 m apart share a 1 km cell; a third 3 km north does not
    homes = spark.createDataFrame(
        [("V1", 28.61000, 77.20000), ("V2", 28.61030, 77.19950), ("V3", 28.63700, 77.20000), ("V4", None, None)],
        "vehicle_id string, lat double, lon double",
    )
    got = coarsen_location(homes, 1000.0)
    c1 = coarsen_point(28.61000, 77.20000, 1000.0)
    c3 = coarsen_point(28.63700, 77.20000, 1000.0)
    expected = spark.createDataFrame([("V1", *c1), ("V2", *c1), ("V3", *c3), ("V4", None, None)], "vehicle_id string, lat double, lon double")
    assert_approx_df_equality(got, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)
    assert c1 != c3
    # the published position is within half a cell diagonal of the true one, never exact
    assert abs(c1[0] - 28.61) < 0.0064 and abs(c1[1] - 77.2) < 0.0073 and c1 != (28.61, 77.2)


def test_coarsen_where_only_touches_matching_rows(spark):
    sites = spark.createDataFrame([("S1", "home", 28.61, 77.2), ("S2", "public", 28.61, 77.2)], "site_id string, kind string, lat double, lon double")
    got = {r["site_id"]: (r["lat"], r["lon"]) for r in coarsen_where(sites, F.col("kind") == "home", 500.0).collect()}
    assert got["S2"] == (28.61, 77.2)
    assert got["S1"] == pytest.approx(coarsen_point(28.61, 77.2, 500.0))
