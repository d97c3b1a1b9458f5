"""bench/harness.py: a failed stage keeps its figures and names its Java root cause (issue 9 runs
that fail at 50 M rows must say why, not 'An error occurred while calling ...collectToPython')."""

from __future__ import annotations

import pytest
from py4j.protocol import Py4JJavaError

from bench.harness import failure_reason, measure


def test_failure_reason_names_the_deepest_java_cause(spark):
    jvm = spark.sparkContext._jvm
    root = jvm.java.lang.OutOfMemoryError("Java heap space")
    outer = jvm.org.apache.spark.SparkException("Job aborted due to stage failure: Task 3 in stage 7.0 failed 1 times", root)
    exc = Py4JJavaError("An error occurred while calling o4673.collectToPython.\n", outer)
    assert failure_reason(exc) == "Py4JJavaError: java.lang.OutOfMemoryError: Java heap space"
    assert failure_reason(ValueError("first line\nsecond")) == "ValueError: first line"


def test_measure_attaches_the_partial_measurement_to_the_error(spark):
    def boom():
        spark.range(10).count()
        raise RuntimeError("stage failed")

    with pytest.raises(RuntimeError) as info:
        measure(spark, "ingest", boom)
    m = info.value.measurement
    assert m.label == "ingest" and m.seconds > 0
    ok, result = measure(spark, "ok", lambda: 42)
    assert result == 42 and ok.label == "ok"
