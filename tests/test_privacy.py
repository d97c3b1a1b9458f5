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


def test_h3_resolution_coarsens_at_least_as_much_as_the_cell():
    from common.spatial.privacy import h3_resolution_for

    # H3 mean cell areas (h3geo.org): res 5 253 km2, res 6 36.1, res 7 5.16, res 8 0.737, res 9 0.105,
    # res 10 0.015; cells of one resolution vary up to ~2x, so the mean must reach twice the square
    assert [h3_resolution_for(m) for m in (1000, 500, 300, 100, 5000)] == [7, 8, 8, 9, 5]
    with pytest.raises(ValueError):
        h3_resolution_for(0)


def test_h3_cells_hold_their_points_and_are_no_smaller_than_the_cell(spark):
    """Each position lies in the hexagon of its cell (shapely on Sedona's GeoJSON), and each hexagon
    covers more than a cell_m square (area in a local equirectangular projection)."""
    import json
    import math

    import numpy as np
    from shapely.geometry import Point, shape
    from shapely.ops import transform

    from common.report.sections import h3_cells, with_h3_geojson

    rng = np.random.default_rng(11)
    pts = [(float(la), float(lo)) for la, lo in zip(rng.uniform(28.4, 28.8, 40), rng.uniform(77.0, 77.4, 40))]
    df = spark.createDataFrame(pts, "lat double, lon double")
    rows = h3_cells(df, 1000.0).transform(with_h3_geojson).collect()
    assert len(rows) == len(pts) and len({r.h3_cell for r in rows}) > 1
    for r in rows:
        hexagon = shape(json.loads(r.geojson))
        assert hexagon.buffer(1e-9).contains(Point(r.lon, r.lat)), (r.lat, r.lon)
        k = math.cos(math.radians(r.lat))
        metres = transform(lambda x, y, k=k: (x * 111_320.0 * k, y * 110_574.0), hexagon)
        assert metres.area > 1000.0**2, metres.area
