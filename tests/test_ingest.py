"""Unit tests of common.bronze.ingest: mapping, parsing, validation, duplicates (hand-built rows).

Expected rows are written by hand; timestamps are given as UTC strings and cast in Spark (the
session time zone is UTC), so the expected instants are readable.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from common.bronze.ingest import (
    QUARANTINED,
    IngestInputError,
    MissingColumnError,
    classify,
    list_source_files,
    map_columns,
    mark_duplicates,
    new_rows,
    parse_timestamp,
    read_raw,
    validate,
)
from common.core.config import DatasetSpec, IngestConfig
from jobs.ingest import load_dataset_files

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc)
RULES = IngestConfig()
TELEMATICS_COLS = ["vehicle_id", "ts", "lat", "lon", "speed_kmh", "odometer_km", "soc_pct", "altitude_m", "heading_deg", "ambient_temp_c"]


def raw_df(spark, header: list[str], rows: list[tuple], source_file: str = "file:/raw/test.csv"):
    """A raw DataFrame as read_raw returns it: all-text source columns + the source file."""
    df = spark.createDataFrame(rows, ", ".join(f"`{c}` string" for c in header))
    return df.withColumn("__source_file", F.lit(source_file))


def with_ts(df, *cols):
    for c in cols:
        df = df.withColumn(c, F.col(c).cast("timestamp"))
    return df


def payd_spec(**changes) -> DatasetSpec:
    spec = load_dataset_files(["conf/datasets/payd_bus.yaml"]).telematics[0]
    return spec.model_copy(update=changes)


PAYD_HEADER = ["timestamp", "telematics_id", "latitude", "longitude", "speed_km_h", "odometer_reading_kms", "state_of_charge"]


# --------------------------------------------------------------------------------------------
# mapping and parsing
# --------------------------------------------------------------------------------------------
def test_payd_bus_columns_map_by_config_alone(spark):
    raw = raw_df(
        spark,
        PAYD_HEADER,
        [
            ("2024-03-04 08:00:00", "KBZ 101A", "-1.2921", "36.8219", "32.5", "10234.5", "81"),
            ("2024-03-04T08:00:30+03:00", " KBZ 101A ", "-1.2925", "36.8225", "N/A", "10234.8", "80.5"),
        ],
    )
    out = map_columns(raw, payd_spec(), "telematics", "inputs.telematics[0]").select(*TELEMATICS_COLS, "source_name")
    expected = with_ts(
        spark.createDataFrame(
            [
                # 08:00 in Africa/Nairobi (UTC+3) is 05:00 UTC; the offset in the 2nd row is honoured
                ("KBZ 101A", "2024-03-04 05:00:00", -1.2921, 36.8219, 32.5, 10234.5, 81.0, None, None, None, "payd_bus_csv"),
                ("KBZ 101A", "2024-03-04 05:00:30", -1.2925, 36.8225, None, 10234.8, 80.5, None, None, None, "payd_bus_csv"),
            ],
            "vehicle_id string, ts string, lat double, lon double, speed_kmh double, odometer_km double, soc_pct double, "
            "altitude_m double, heading_deg double, ambient_temp_c double, source_name string",
        ),
        "ts",
    )
    assert_df_equality(out, expected, ignore_nullable=True)


def test_parse_timestamp_formats_zones_and_epochs(spark):
    rows = [
        ("03/29/2021 11:13:45",),  # Morocco UTC+1
        ("4/22/2021 08:42:50",),  # Ramadan 2021: Morocco on UTC+0
        ("2021-03-29T11:13:45Z",),  # explicit offset: already an instant
        ("2021-03-29T16:43:45+05:30",),
        ("1617016425",),  # epoch seconds = 2021-03-29 11:13:45 UTC
        ("1617016425000",),  # epoch milliseconds, same instant
        ("29/00/2003 10:00:00",),  # corrupt: month 29
        ("garbage",),
    ]
    df = spark.createDataFrame(rows, "s string")
    formats = ["M/d/yyyy HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ssXXX", "epoch_auto"]
    out = df.select("s", parse_timestamp("s", formats, "Africa/Casablanca").alias("ts"))
    expected = with_ts(
        spark.createDataFrame(
            [
                ("03/29/2021 11:13:45", "2021-03-29 10:13:45"),
                ("4/22/2021 08:42:50", "2021-04-22 08:42:50"),
                ("2021-03-29T11:13:45Z", "2021-03-29 11:13:45"),
                ("2021-03-29T16:43:45+05:30", "2021-03-29 11:13:45"),
                ("1617016425", "2021-03-29 11:13:45"),
                ("1617016425000", "2021-03-29 11:13:45"),
                ("29/00/2003 10:00:00", None),
                ("garbage", None),
            ],
            "s string, ts string",
        ),
        "ts",
    )
    assert_df_equality(out, expected, ignore_nullable=True)


def test_bad_values_become_null_and_are_flagged(spark):
    spec = DatasetSpec(source_timezone="UTC", name="t", path="x", columns={"soc_pct": "soc", "speed_kmh": "speed", "altitude_m": "alt"}, constants={"vehicle_id": "v1"})
    raw = raw_df(
        spark,
        ["ts", "lat", "lon", "soc", "speed", "alt"],
        [
            ("2024-03-04 08:00:00", "1.0", "2.0", "N/A", "", "12,5"),
            ("2024-03-04 08:01:00", "1.0", "2.0", "NaN", "  ", "abc"),
        ],
    )
    out = map_columns(raw, spec, "telematics").select("soc_pct", "speed_kmh", "altitude_m", "unparsed_columns")
    expected = spark.createDataFrame(
        [
            # 'N/A' and '' are "no value"; '12,5' without decimal_comma does not parse
            (None, None, None, ["altitude_m"]),
            (None, None, None, ["soc_pct", "altitude_m"]),  # NaN is no measurement
        ],
        "soc_pct double, speed_kmh double, altitude_m double, unparsed_columns array<string>",
    )
    assert_df_equality(out, expected, ignore_nullable=True)

    comma = spec.model_copy(update={"decimal_comma": True})
    out = map_columns(raw.limit(1), comma, "telematics").select("altitude_m", "unparsed_columns")
    assert out.collect() == [(12.5, [])]


def test_date_and_time_columns_value_map_and_expression(spark):
    """ts from two columns (Twizy/Dundee style) and from an expression (ESB unpadded HMM); codes mapped."""
    spec = DatasetSpec(
        name="esb",
        path="x",
        columns={"charger_id": "cp_id", "status": "status", "info": "status"},
        expressions={"port_id": "concat(cp_id, '/', connector_type)", "ts": "concat(d, lpad(t, 4, '0'))"},
        values={"status": {"Occ": "Charging", "OOS": "Faulted"}},
        timestamp_formats=["yyyyMMddHHmm"],
        source_timezone="Europe/Dublin",
    )
    raw = raw_df(
        spark,
        ["d", "t", "cp_id", "connector_type", "status"],
        [("20181101", "5", "CP:A", "CHAdeMO", "Occ"), ("20180701", "1009", "CP:B", "ComboCCS", "OOS"), ("20181101", "0", "CP:C", "FastAC43", "Weird")],
    )
    out = map_columns(raw, spec, "charger_status").select("charger_id", "port_id", "ts", "status", "info")
    expected = with_ts(
        spark.createDataFrame(
            [
                ("CP:A", "CP:A/CHAdeMO", "2018-11-01 00:05:00", "Charging", "Occ"),  # GMT in November
                ("CP:B", "CP:B/ComboCCS", "2018-07-01 09:09:00", "Faulted", "OOS"),  # IST (UTC+1) in July
                ("CP:C", "CP:C/FastAC43", "2018-11-01 00:00:00", "Weird", "Weird"),  # unmapped codes pass through
            ],
            "charger_id string, port_id string, ts string, status string, info string",
        ),
        "ts",
    )
    assert_df_equality(out, expected, ignore_nullable=True)

    twizy = load_dataset_files(["conf/datasets/twizy.yaml"]).telematics[0]
    header = ["Date", "Time", "LAT", "LON", "Soc", "Speed", "ALT", "Temperature"]
    raw = raw_df(spark, header, [("7/1/2021", "09:00:00", "34.0", "-6.8", "50", "0", "1", "20"), ("", "09:00:01", "34.0", "-6.8", "50", "0", "1", "20")])
    out = map_columns(raw, twizy, "telematics").select("vehicle_id", "ts", "unparsed_columns")
    assert [(r.vehicle_id, str(r.ts), r.unparsed_columns) for r in out.collect()] == [
        ("rsk_twizy_01", "2021-07-01 08:00:00", []),
        ("rsk_twizy_01", "None", []),  # an empty Date part -> no timestamp (missing, not unparseable)
    ]


def test_missing_required_column_names_the_mapping_key(spark):
    raw = raw_df(spark, ["timestamp", "latitude", "longitude", "state_of_charge"], [("2024-03-04 08:00:00", "1", "2", "50")])
    spec = payd_spec()
    with pytest.raises(MissingColumnError) as err:
        map_columns(raw, spec, "telematics", "inputs.telematics[0]")
    msg = str(err.value)
    assert "'telematics_id'" in msg and "'vehicle_id'" in msg and "inputs.telematics[0].columns.vehicle_id" in msg

    no_mapping = DatasetSpec(source_timezone="UTC", name="plain", path="x")
    with pytest.raises(MissingColumnError, match=r"required column 'vehicle_id'.*inputs.telematics\[2\].columns.vehicle_id.*constants.vehicle_id"):
        map_columns(raw, no_mapping, "telematics", "inputs.telematics[2]")

    bad_expr = DatasetSpec(source_timezone="UTC", name="e", path="x", columns={"vehicle_id": "latitude"}, expressions={"ts": "concat(no_such_col, 'x')"})
    with pytest.raises(MissingColumnError, match=r"inputs.telematics\[0\].expressions.ts"):
        map_columns(raw, bad_expr, "telematics", "inputs.telematics[0]")


def test_zoneless_pattern_without_source_timezone_stops_naming_the_key(spark):
    """A DatasetSpec used directly (not through InputsConfig) is refused the same way."""
    raw = raw_df(spark, ["vehicle_id", "ts", "lat", "lon", "soc_pct"], [("v1", "2024-03-04 08:00:00", "28.6", "77.2", "50")])
    with pytest.raises(IngestInputError, match=r"inputs\.telematics\[3\]\.source_timezone is not set"):
        map_columns(raw, DatasetSpec(name="t", path="x"), "telematics", "inputs.telematics[3]")


def test_csv_files_with_different_headers_union_by_name(spark, tmp_path):
    """Spark applies one header positionally to all files of a read; read_raw groups by header."""
    (tmp_path / "a.csv").write_text("\ufeffID,Name,Latitude,Longitude\n1,A,40.1,-73.9\n")
    (tmp_path / "b.csv").write_text('ID,Extra,Name,Latitude,Longitude\n2,x,"B\nline two",41.2,-74.1\n')
    spec = DatasetSpec(name="s", path=str(tmp_path / "*.csv"), columns={"station_id": "ID", "name": "Name", "lat": "Latitude", "lon": "Longitude"})
    raw = read_raw(spark, spec, list_source_files(spark, spec.path))
    out = map_columns(raw, spec, "stations").select("station_id", "name", "lat", "lon").orderBy("station_id")
    expected = spark.createDataFrame([("1", "A", 40.1, -73.9), ("2", "B\nline two", 41.2, -74.1)], "station_id string, name string, lat double, lon double")
    assert_df_equality(out, expected, ignore_nullable=True)


# --------------------------------------------------------------------------------------------
# validation and duplicates
# --------------------------------------------------------------------------------------------
def test_validate_telematics_reasons(spark):
    spec = DatasetSpec(source_timezone="UTC", name="t", path="x", columns={"soc_pct": "soc"})
    raw = raw_df(
        spark,
        ["vehicle_id", "ts", "lat", "lon", "soc"],
        [
            ("v1", "2024-03-04 08:00:00", "28.6", "77.2", "50"),  # valid
            (None, "2024-03-04 08:00:00", "28.6", "77.2", "50"),  # missing id
            ("v1", "04/03/2024", "28.6", "77.2", "50"),  # no format fits
            ("v1", "2024-03-04 08:00:00", "95.0", "77.2", "50"),  # lat out of range
            ("v1", "2024-03-04 08:00:00", "28.6", "1555.6", "50"),
            ("v1", "2024-03-04 08:00:00", "28.6", "77.2", "104"),
            ("v1", "1970-01-01 00:00:00", "28.6", "77.2", "50"),  # sentinel date
            ("v1", "2024-03-20 08:00:00", "28.6", "77.2", "50"),  # > now + 2 days
            ("v\ufffd1", "2024-03-04 08:00:00", "28.6", "77.2", "50"),  # undecodable byte
            ("v1", "2024-03-04 08:00:00", "0", "0", "-5"),  # 0/0 is clean's business; SOC is not
        ],
    )
    out = validate(map_columns(raw, spec, "telematics"), "telematics", RULES, NOW).select("vehicle_id", "reason", "reasons")
    expected = spark.createDataFrame(
        [
            ("v1", None, []),
            (None, "missing_vehicle_id", ["missing_vehicle_id"]),
            ("v1", "unparseable_ts", ["unparseable_ts"]),
            ("v1", "lat_out_of_range", ["lat_out_of_range"]),
            ("v1", "lon_out_of_range", ["lon_out_of_range"]),
            ("v1", "soc_pct_out_of_range", ["soc_pct_out_of_range"]),
            ("v1", "ts_too_old", ["ts_too_old"]),
            ("v1", "ts_in_future", ["ts_in_future"]),
            ("v\ufffd1", "invalid_encoding", ["invalid_encoding"]),
            ("v1", "soc_pct_out_of_range", ["soc_pct_out_of_range"]),
        ],
        "vehicle_id string, reason string, reasons array<string>",
    )
    assert_df_equality(out, expected, ignore_nullable=True)


def test_validate_session_reasons(spark):
    spec = DatasetSpec(name="s", path="x", timestamp_formats=["dd/MM/yyyy HH:mm"], source_timezone="Europe/London")
    raw = raw_df(
        spark,
        ["session_id", "start_ts", "end_ts", "kwh"],
        [
            ("1", "02/03/2018 23:50", "03/03/2018 14:16", "19.99"),
            ("2", "05/06/2018 11:11", "", ""),  # open session
            ("3", "05/06/2018 11:11", "05/06/2018 12:00", "-3.2"),
            ("4", "05/06/2018 11:11", "01/01/1970 00:00", "4.0"),  # sentinel end
            ("5", "05/06/2018 11:11", "05/06/2018 10:00", "4.0"),
            ("6", "5th June", "05/06/2018 10:00", "4.0"),
        ],
    )
    out = validate(map_columns(raw, spec, "charging_sessions"), "charging_sessions", RULES, NOW).select("session_id", "start_ts", "reasons")
    expected = with_ts(
        spark.createDataFrame(
            [
                ("1", "2018-03-02 23:50:00", []),  # GMT in winter
                ("2", "2018-06-05 10:11:00", ["open_session"]),  # BST (UTC+1) in summer
                ("3", "2018-06-05 10:11:00", ["negative_kwh"]),
                ("4", "2018-06-05 10:11:00", ["end_ts_too_old", "end_before_start"]),
                ("5", "2018-06-05 10:11:00", ["end_before_start"]),
                ("6", None, ["unparseable_start_ts"]),
            ],
            "session_id string, start_ts string, reasons array<string>",
        ),
        "start_ts",
    )
    assert_df_equality(out, expected, ignore_nullable=True)


def test_filter_and_unknown_status(spark):
    spec = DatasetSpec(source_timezone="UTC", name="c", path="x", filter="kind = 'EV'")
    raw = raw_df(
        spark,
        ["kind", "port_id", "ts", "status"],
        [("EV", "p1", "2024-03-04 08:00:00", "Charging"), ("CNG", "p2", "2024-03-04 08:00:00", "Charging"), ("EV", "p3", "2024-03-04 08:00:00", "Busy")],
    )
    out = validate(map_columns(raw, spec, "charger_status"), "charger_status", RULES, NOW).select("port_id", "reason")
    expected = spark.createDataFrame([("p1", None), ("p2", "excluded_by_filter"), ("p3", "unknown_status")], "port_id string, reason string")
    assert_df_equality(out, expected, ignore_nullable=True)


def test_exact_duplicates_are_marked_near_duplicates_kept(spark):
    spec = DatasetSpec(source_timezone="UTC", name="t", path="x")
    row = ("v1", "2024-03-04 08:00:00", "28.6", "77.2", "50")
    raw = raw_df(
        spark,
        ["vehicle_id", "ts", "lat", "lon", "soc_pct"],
        [row, row, row, ("v1", "2024-03-04 08:00:00", "28.7", "77.2", "50"), ("v1", "bad", "28.6", "77.2", "50"), ("v1", "bad", "28.6", "77.2", "50")],
    )
    out = classify(raw, spec, "telematics", RULES, NOW).groupBy("lat", "reason", "ingest_status").count()
    expected = spark.createDataFrame(
        [
            (28.6, None, "valid", 1),
            (28.6, None, "duplicate", 2),  # byte-identical copies
            (28.7, None, "valid", 1),  # same key, other values: kept for clean's near-duplicate rule
            (28.6, "unparseable_ts", QUARANTINED, 1),
            (28.6, "unparseable_ts", "duplicate", 1),
        ],
        "lat double, reason string, ingest_status string, count long",
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_mark_duplicates_keeps_the_raw_record_only_where_needed(spark):
    df = spark.createDataFrame(
        [("s", "f1", "r1", "h1", None), ("s", "f2", "r1", "h1", None), ("s", "f1", "r2", "h2", "lat_out_of_range"), ("s", "f1", "r3", "h3", None)],
        "source_name string, source_file string, raw_record string, raw_hash string, reason string",
    )
    expected = spark.createDataFrame(
        [("f1", "h1", "valid", None), ("f2", "h1", "duplicate", "r1"), ("f1", "h2", "quarantined", "r2"), ("f1", "h3", "valid", None)],
        "source_file string, raw_hash string, ingest_status string, raw_record string",
    )
    got = mark_duplicates(df).select("source_file", "raw_hash", "ingest_status", "raw_record")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_new_rows_skips_keys_already_present(spark):
    batch = spark.createDataFrame([("a", 1, "h1"), ("a", 1, "h1"), ("b", 2, "h2"), ("c", 3, "h3")], "k string, v int, row_hash string")
    existing = spark.createDataFrame([("b", 2, "h2"), ("c", 3, "hX")], "k string, v int, row_hash string")
    out = new_rows(batch, existing, ["k", "row_hash"]).orderBy("k")
    expected = spark.createDataFrame([("a", 1, "h1"), ("c", 3, "h3")], "k string, v int, row_hash string")
    assert_df_equality(out, expected)


def test_mark_duplicates_prefers_first_file(spark):
    df = spark.createDataFrame(
        [("s", "f2", "r", "h", None), ("s", "f1", "r", "h", None)],
        "source_name string, source_file string, raw_record string, raw_hash string, reason string",
    )
    out = mark_duplicates(df).select("source_file", "ingest_status").orderBy("source_file")
    assert [tuple(r) for r in out.collect()] == [("f1", "valid"), ("f2", "duplicate")]
