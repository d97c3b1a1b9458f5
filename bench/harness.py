"""Measurement helpers shared by the benchmark scripts.

`measure(spark, label, fn)` runs fn() and reports wall seconds, peak RSS of the driver JVM and
of the Python workers (sampled over the process tree every 0.2 s with psutil), and the shuffle
bytes Spark wrote meanwhile (from the Spark UI's REST API of this application);
`peak_total_mb` is the largest sum of the three sampled at the same instant (the machine's view).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import psutil


@dataclass
class Measurement:
    label: str
    seconds: float
    rows: int | None = None
    peak_driver_mb: float = 0.0
    peak_workers_mb: float = 0.0
    peak_python_driver_mb: float = 0.0
    shuffle_mb: float | None = None
    extra: dict = field(default_factory=dict)
    peak_total_mb: float = 0.0  # driver JVM + Python workers + Python driver at the same instant

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.seconds if self.rows and self.seconds > 0 else None

    def line(self) -> str:
        rps = f"{self.rows_per_s:,.0f}" if self.rows_per_s else "-"
        sh = f"{self.shuffle_mb:,.1f}" if self.shuffle_mb is not None else "-"
        return (f"| {self.label} | {self.rows or '-':,} | {self.seconds:,.1f} | {rps} | {self.peak_driver_mb:,.0f} | {self.peak_workers_mb:,.0f} | {self.peak_python_driver_mb:,.0f} | {sh} |").replace(
            "| -, |", "| - |"
        )


HEADER = "| stage | rows | seconds | rows/s | driver JVM peak MB | Python workers peak MB | Python driver peak MB | shuffle MB |\n|---|---:|---:|---:|---:|---:|---:|---:|"


class _Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.driver = self.workers = self.pydriver = self.total = 0.0
        self.me = psutil.Process(os.getpid())

    def run(self):
        while not self.stop.is_set():
            jvm = workers = 0.0
            try:
                procs = []
                for child in self.me.children(recursive=True):
                    try:
                        procs.append((child.ppid(), " ".join(child.cmdline()[:3]), child.memory_info().rss / 2**20, child.pid))
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
                java = {pid for _, name, _, pid in procs if "java" in name}
                for ppid, name, rss, _ in procs:
                    if "java" in name:
                        # A child of the JVM still named java is a fork about to exec a helper (Hadoop
                        # shell commands): it shares the JVM's pages, so its RSS would count them twice.
                        if ppid not in java:
                            jvm += rss
                    elif "python" in name:
                        workers += rss
                me = self.me.memory_info().rss / 2**20
                self.driver = max(self.driver, jvm)
                self.workers = max(self.workers, workers)
                self.pydriver = max(self.pydriver, me)
                self.total = max(self.total, jvm + workers + me)
            except psutil.Error:
                pass
            time.sleep(0.2)


Sampler = _Sampler  # public name: bench/baseline_pandas.py samples its own RSS per stage with it


def _shuffle_bytes(spark) -> float | None:
    try:
        url = spark.sparkContext.uiWebUrl
        app = spark.sparkContext.applicationId
        with urllib.request.urlopen(f"{url}/api/v1/applications/{app}/stages?status=complete", timeout=5) as r:
            stages = json.load(r)
        return float(sum(s.get("shuffleWriteBytes", 0) for s in stages))
    except Exception:  # noqa: BLE001 - UI disabled or unreachable: report '-'
        return None


def measure(spark, label: str, fn, rows: int | None = None) -> tuple[Measurement, object]:
    before = _shuffle_bytes(spark)
    sampler = _Sampler()
    sampler.start()
    t0 = time.perf_counter()
    failure: Exception | None = None
    result = None
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - re-raised below with the figures measured until then
        failure = exc
    finally:
        seconds = time.perf_counter() - t0
        sampler.stop.set()
        sampler.join()
    after = _shuffle_bytes(spark)
    shuffle = (after - before) / 2**20 if before is not None and after is not None else None
    m = Measurement(label, seconds, rows, sampler.driver, sampler.workers, sampler.pydriver, shuffle, peak_total_mb=sampler.total)
    if failure is not None:
        failure.measurement = m  # wall time and memory peaks up to the failure, for the results table
        raise failure
    return m, result


def failure_reason(exc: BaseException, limit: int = 300) -> str:
    """One line naming what failed: for a Py4J error the deepest Java cause (e.g.
    'java.lang.OutOfMemoryError: Java heap space'), not Py4J's 'An error occurred while calling'."""
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)  # Py4JJavaError / CapturedException
    if java is not None:
        try:
            cause, seen = java, 0
            while cause.getCause() is not None and seen < 20:
                cause, seen = cause.getCause(), seen + 1
            return f"{type(exc).__name__}: {cause.toString().splitlines()[0]}"[:limit]
        except Exception:  # noqa: BLE001 - the JVM may be gone; fall back to the Python text
            pass
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:limit]


def measure_subprocess(label: str, argv: list[str], rows: int | None = None, timeout: float | None = None) -> Measurement:
    """Run a separate process (e.g. the pandas baseline) and record wall time and its peak RSS."""
    t0 = time.perf_counter()
    proc = psutil.Popen(argv)
    peak = 0.0
    status = "ok"
    while proc.poll() is None:
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            peak = max(peak, rss / 2**20)
        except psutil.Error:
            pass
        if timeout and time.perf_counter() - t0 > timeout:
            proc.kill()
            status = f"timeout after {timeout:.0f}s"
            break
        time.sleep(0.2)
    rc = proc.wait()
    if status == "ok" and rc != 0:
        status = "out of memory (killed)" if rc in (-9, 137) else f"failed (exit {rc})"
    m = Measurement(label, time.perf_counter() - t0, rows, 0.0, 0.0, peak, None, {"status": status})
    return m


def machine_description() -> str:
    mem = psutil.virtual_memory().total / 2**30
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    except OSError:
        java = "java ?"
    return f"{platform.node()}: {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}, {java}"
