"""The HTML report: self-contained, renders in a real headless Chromium without console errors,
map layers carry the expected markers, charts are drawn, residences only coarsened."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser

import pandas as pd
import pytest

from common.report import html as R

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_svg_map_counts_and_legend():
    import pandas as pd

    pts = pd.DataFrame({"lat": [28.6, 28.61, 28.62], "lon": [77.2, 77.21, 77.22], "n": [1, 2, 3]})
    html = R.svg_map("m1", "test", [R.Layer("a", pts, "#f00", label_col="n"), R.Layer("b", pts.head(1), "#00f", shape="square")], [[(77.1, 28.5), (77.3, 28.5), (77.3, 28.7), (77.1, 28.5)]])
    assert html.count('class="marker"') == 4
    assert "a (3)" in html and "b (1)" in html
    # projection keeps points inside the viewBox
    xs = [float(x) for x in re.findall(r'cx="([\d.]+)"', html)]
    assert all(0 <= x <= 760 for x in xs)


def test_report_has_no_external_resources(spark, fleet_silver, tmp_path):
    from jobs.report import build_report

    cfg = fleet_silver.model_copy(deep=True)
    cfg.report.output_dir = str(tmp_path / "reports")
    path = build_report(spark, cfg, run_id="t1")
    text = path.read_text()
    assert not re.search(r'(src|href)="https?://', text), "report must not load anything from the network"
    assert (tmp_path / "reports" / "latest" / "index.html").exists()


@pytest.mark.browser
def test_report_renders_in_chromium(spark, fleet_report, tmp_path):
    if not CHROMIUM:
        pytest.skip("chromium is not installed (make test installs the Debian package; apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    path, expected = fleet_report
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        counts = page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('svg.map g.layer')].map(
                 g => [g.closest('svg').id + '|' + g.dataset.layer, g.querySelectorAll('.marker').length]))"""
        )
        charts = page.evaluate(
            """() => [...document.querySelectorAll('figure.chart')].map(f => {
                 const s = f.querySelector('svg'); const b = s.getBoundingClientRect();
                 return [f.dataset.chart, s.querySelectorAll('path,rect,line').length, b.width, b.height]; })"""
        )
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    print("map layers:", counts)
    print("charts:", [(c[0], c[1]) for c in charts])
    print("screenshot:", shot)
    assert errors == [], errors
    assert shot.stat().st_size > 10_000
    for key, n in expected["layers"].items():
        assert counts.get(key) == n, (key, counts.get(key), n)
    for tier in expected["risk_tiers"]:
        assert counts.get(f"map-risk-areas|drivers ({tier} risk)", 0) >= 1, (tier, counts)
    rendered = {c[0] for c in charts if c[1] > 5 and c[2] > 100 and c[3] > 100}
    missing = set(expected["charts"]) - rendered
    assert not missing, f"charts not rendered: {missing}"


class _ReportParser(HTMLParser):
    """What a reader of the report sees, from the HTML alone (no browser): sections, map markers per
    layer, drawing elements per chart, KPI tiles and the cell text of every data table."""

    def __init__(self):
        super().__init__()
        self.sections: list[str] = []
        self.layers: dict[str, int] = {}
        self.charts: dict[str, int] = {}
        self.captions: dict[str, str] = {}
        self._caption: list[str] | None = None
        self.tables: dict[str, list[list[str]]] = {}
        self.tiles: dict[str, str] = {}
        self._map = self._layer = self._chart = self._table = None
        self._cell: list[str] | None = None
        self._tile: list[str] | None = None
        self._tile_value: str | None = None
        self._in_b = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "section":
            self.sections.append(a["id"])
        elif tag == "svg" and "map" in classes:
            self._map = a["id"]
        elif tag == "g" and "layer" in classes and self._map:
            self._layer = f"{self._map}|{a['data-layer']}"
            self.layers[self._layer] = 0
        elif "marker" in classes and self._layer:
            self.layers[self._layer] += 1
        elif tag == "figure" and "chart" in classes:
            self._chart = a["data-chart"]
            self.charts[self._chart] = 0
        elif tag in ("path", "rect", "line") and self._chart:
            self.charts[self._chart] += 1
        elif tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "div" and "kpi" in classes:
            self._tile, self._tile_value = [], None
        elif tag == "b" and self._tile is not None:
            self._in_b = True
        elif tag == "figcaption" and self._chart:
            self._caption = []

    def handle_endtag(self, tag):
        if tag == "g":
            self._layer = None
        elif tag == "svg" and self._map and not self._layer:
            self._map = None
        elif tag == "figcaption" and self._caption is not None:
            self.captions[self._chart] = "".join(self._caption).strip()
            self._caption = None
        elif tag == "figure":
            self._chart = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "b" and self._in_b:
            self._in_b = False
            self._tile_value = "".join(self._tile).strip()
            self._tile = []
        elif tag == "div" and self._tile is not None and self._tile_value is not None:
            self.tiles["".join(self._tile).strip()] = self._tile_value
            self._tile = self._tile_value = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._tile is not None:
            self._tile.append(data)
        if self._caption is not None:
            self._caption.append(data)


def test_report_html_shows_every_section_layer_chart_and_the_gold_numbers(spark, fleet_report, fleet_scored):
    """The report's content checked without a browser: every section, every map layer with one
    marker per row of its gold table, every chart drawn, and the numbers equal to the gold tables
    (recomputed here with pandas)."""
    from common.io import tables
    from jobs.report import SECTIONS

    path, expected = fleet_report
    parsed = _ReportParser()
    parsed.feed(path.read_text(encoding="utf-8"))

    assert parsed.sections == [fn.__name__.removeprefix("section_") for fn in SECTIONS]
    for key, n in expected["layers"].items():
        assert parsed.layers.get(key) == n, (key, parsed.layers.get(key), n)
    for tier in expected["risk_tiers"]:
        assert parsed.layers.get(f"map-risk-areas|drivers ({tier} risk)", 0) >= 1, (tier, parsed.layers)
    drawn = {c for c, n in parsed.charts.items() if n > 5}
    assert set(expected["charts"]) <= drawn, f"charts without drawing: {set(expected['charts']) - drawn}"

    cfg = fleet_scored
    quality = tables.read(spark, cfg, "gold.quality_daily").toPandas()
    assert parsed.tiles["rows cleaned"] == f"{int(quality['rows'].sum()):,}"
    assert parsed.tiles["usable share"] == f"{quality['usable_rows'].sum() / quality['rows'].sum():.2%}"

    # the stage status table is the newest pipeline run of audit.stage_runs, stage by stage
    runs = tables.read(spark, cfg, "audit.stage_runs").toPandas()
    newest = runs[runs.run_id == runs.sort_values(["finished_at", "run_id"]).run_id.iloc[-1]]
    status = parsed.tables["status_table"]
    assert status[0] == ["stage", "status", "reason"]
    assert sorted(tuple(r[:2]) for r in status[1:]) == sorted(zip(newest.stage, newest.status))

    # reliability tests: every row of the gold table, in the same units
    rel = tables.read(spark, cfg, "gold.reliability_tests").toPandas()
    shown = parsed.tables["reliability_tests_table"]
    assert shown[0] == list(rel.columns) and len(shown) - 1 == len(rel)

    # site capacity: one row per station with sessions, ports needed as the most over its 168 slots (pandas)
    cap = tables.read(spark, cfg, "gold.site_capacity").toPandas()
    shown = parsed.tables["site_capacity_table"]
    header, rows = shown[0], shown[1:]
    assert len(rows) == min(cfg.report.max_points_per_layer, cap.groupby(["source_name", "station_id"]).ngroups)
    most = cap.groupby("station_id").additional_ports.max()
    for r in rows:
        cell, expected_most = r[header.index("additional_ports")], most[r[header.index("station_id")]]
        assert (cell == "–" and pd.isna(expected_most)) or int(float(cell)) == expected_most

    # station KPIs: the first rows of gold.station_kpis, group by group
    stations = tables.read(spark, cfg, "gold.station_kpis").toPandas()
    shown = parsed.tables["station_kpis_table"]
    assert shown[0] == list(stations.columns) and len(shown) - 1 == min(40, len(stations))
    assert {r[shown[0].index("group")] for r in shown[1:]} <= set(stations["group"].astype(str))

    # the risk histogram counts the scored drivers of gold.driver_risk
    risk = tables.read(spark, cfg, "gold.driver_risk").toPandas()
    assert f"({int(risk.z_score.notna().sum())} scored drivers)" in parsed.captions["risk_z"]
