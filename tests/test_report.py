"""The HTML report: self-contained, renders in a real headless Chromium without console errors,
map layers carry the expected markers, charts are drawn, residences only coarsened."""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.report import html as R

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_web_map_layers_counts_caps_and_coordinate_decimals():
    pts = pd.DataFrame({"lat": [28.612345, 28.61, 28.62], "lon": [77.212345, 77.21, 77.22], "n": [1, 2, 3]})
    hexes = pd.DataFrame({"geojson": ['{"type": "Polygon", "coordinates": [[[77.20001, 28.60001], [77.21, 28.6], [77.21, 28.61], [77.20001, 28.60001]]]}'], "v": [4], "label": ["x"]})
    area = [[(77.1, 28.5), (77.3, 28.5), (77.3, 28.7), (77.1, 28.5)]]
    layers = [
        R.Layer("a", pts, "#f00", label_col="n"),
        R.Layer("b", pts.head(1), "#00f", total=10, visible=False),
        R.AreaLayer("cells", hexes, "#0a0", value_col="v"),
        R.Layer("empty", pts.head(0), "#000"),
    ]
    page = R.web_map("m1", "test", layers, area, decimals=3)
    assert json.loads(html_lib.unescape(re.search(r"data-layers='([^']*)'", page).group(1))) == {"a": 3, "b": 1, "cells": 1}
    assert "a (3)" in page and "b (1 of 10 shown)" in page and '"legendonly"' in page
    numbers = re.findall(r"\d+\.\d+", page.split("Plotly.newPlot", 1)[1])
    assert numbers and max(len(n.split(".")[1]) for n in numbers if n.startswith(("28.", "77."))) <= 3
    assert "28.612345" not in page and "28.612" in page
    assert R.web_map("m2", "nothing", [R.Layer("empty", pts.head(0), "#000")], [], 3).startswith('<p class="empty">')
    # a layer hidden when the page opens is still a map to open, framed on its rows
    hidden_only = R.web_map("m3", "hidden", [R.Layer("b", pts, "#00f", visible=False)], [], 3)
    assert hidden_only.startswith('<figure class="map-figure"') and '"legendonly"' in hidden_only
    # an area of several polygons is one legend entry
    fig, _ = R.map_figure([], area + [[(78.1, 28.5), (78.3, 28.5), (78.3, 28.7), (78.1, 28.5)]], 3)
    assert [t.name for t in fig.data] == ["operating area"] and sum(v is None for v in fig.data[0].lon) == 1


def test_home_cells_show_risk_tiers_only_with_enough_drivers(spark):
    from common.core.config import Config
    from common.report.sections import ReportInputs, _home_layers

    cfg = Config()
    k = cfg.report.min_drivers_for_tiers
    # k drivers of mixed tiers in one street (homes ~1 m apart, one cell), one driver alone 50 km
    # away, and k drivers who are all High in a third town
    homes = [(f"v{i}", 28.6100 + i * 0.00001, 77.2100) for i in range(k)] + [("alone", 29.0500, 77.6500)]
    homes += [(f"h{i}", 28.4000 + i * 0.00001, 77.0000) for i in range(k)]
    tiers = [(f"v{i}", "High" if i < k - 1 else "Low") for i in range(k)] + [("alone", "High")] + [(f"h{i}", "High") for i in range(k)]
    inputs = ReportInputs(
        {
            "restricted.residences": spark.createDataFrame(homes, "vehicle_id string, home_lat double, home_lon double"),
            "gold.driver_risk": spark.createDataFrame(tiers, "vehicle_id string, tier string"),
        }
    )
    cells, high = _home_layers(inputs, cfg)
    labels = sorted(cells.shapes["label"])
    assert len(labels) == 3
    shown = [lb for lb in labels if "risk:" in lb]
    assert shown == [f"{k} drivers; risk: {k - 1} high, 0 medium, 1 low, 0 not scored"], labels
    assert sum("risk not shown" in lb and "high" not in lb for lb in labels) == 2  # the lone driver and the all-High cell
    assert high.shapes["high"].tolist() == [k - 1]  # only the mixed cell enters the high-risk layer


def test_histogram_bins_count_every_row_like_numpy(spark):
    from common.report.sections import histogram_bins

    rng = np.random.default_rng(3)
    values = rng.normal(50, 20, 2_000).tolist() + [None, float("nan")]
    df = spark.createDataFrame([(v,) for v in values], "x double")
    edges, counts = histogram_bins(df, "x", 25)
    finite = np.array([v for v in values if v is not None and np.isfinite(v)])
    want_counts, want_edges = np.histogram(finite, bins=25)
    assert counts == want_counts.tolist() and sum(counts) == 2_000
    np.testing.assert_allclose(edges, want_edges, rtol=1e-12)
    assert histogram_bins(spark.createDataFrame([(7.0,), (7.0,)], "x double"), "x", 10) == ([6.5, 7.5], [2])
    # values on an edge, where the quotient alone rounds one bin low ([0, 1.4, 7] / 30: 1.4 opens bin 6)
    for data in ([0.0, 1.4, 7.0], np.round(rng.uniform(-3, 9, 400), 1).tolist()):
        edges, counts = histogram_bins(spark.createDataFrame([(v,) for v in data], "x double"), "x", 30)
        assert counts == np.histogram(data, bins=30)[0].tolist(), data
    assert histogram_bins(spark.createDataFrame([(None,)], "x double"), "x", 10) == ([], [])


def test_report_has_no_external_resources(spark, fleet_silver, tmp_path):
    from jobs.report import build_report

    cfg = fleet_silver.model_copy(deep=True)
    cfg.report.output_dir = str(tmp_path / "reports")
    path = build_report(spark, cfg, run_id="t1")
    text = path.read_text()
    # The markup loads nothing; the inlined plotly.js carries link texts of its own (checked by the
    # browser test, which sees no request leave the file).
    markup = re.sub(r"<script>.*?</script>", "<script></script>", text, flags=re.S)
    assert not re.search(r'(src|href)=["\']?https?://', markup), "report must not load anything from the network"
    assert "<script src" not in markup and text.count("<script>") >= 2
    assert (tmp_path / "reports" / "latest" / "index.html").exists()


# Where the browser test leaves a screenshot per report section for review (not in git).
SCREENSHOTS = Path(__file__).resolve().parents[1] / "reports" / "screenshots"

# Per map trace: layer, shown when the page opens, rows drawn from (markers, cells, or outlines:
# one null after each ring), the sum of the cells' values, and the trace's kind.
_MAP_LAYERS = """id => document.getElementById(id)._fullData.map(t => [t.meta.layer, t.visible === true,
    t.type === 'choropleth' ? t.locations.length : (t.mode === 'markers' ? t.lat.length : t.lat.filter(v => v === null).length),
    t.z ? t.z.reduce((a, b) => a + b, 0) : null, t.type === 'choropleth' ? 'cells' : t.mode])"""
_MAP_SCALE = "id => document.getElementById(id)._fullLayout.geo._subplot.projection.scale()"
_MAP_CENTRE = "id => document.getElementById(id)._fullLayout.geo._subplot.projection.translate()"


@pytest.mark.browser
def test_report_renders_in_chromium(spark, fleet_report):
    """Offline in headless Chromium: no console error, every map layer with its rows, drawn markers,
    the map zooms with the wheel, pans with a drag and switches layers from its legend, every chart
    drawn; a screenshot per section in reports/screenshots/."""
    if not CHROMIUM:
        pytest.skip("chromium is not installed (make test installs the Debian package; apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    path, expected = fleet_report
    errors: list[str] = []
    requests: list[str] = []
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        page.wait_for_function("() => [...document.querySelectorAll('.plotly-graph-div')].every(d => d._fullLayout)")
        traces = page.evaluate(_MAP_LAYERS, "map-fleet")
        layers = {f"map-fleet|{name}": (shown, rows, total) for name, shown, rows, total, _ in traces}
        drawn = page.evaluate("() => [document.querySelectorAll('#map-fleet path.point').length, document.querySelectorAll('#map-fleet path.choroplethlocation').length]")
        charts = page.evaluate(
            """() => [...document.querySelectorAll('figure.chart')].map(f => {
                 const b = f.querySelector('.main-svg').getBoundingClientRect();
                 return [f.dataset.chart, f.querySelectorAll('.cartesianlayer .trace path, .cartesianlayer .trace image, .heatmaplayer image').length, b.width, b.height]; })"""
        )
        # zoom with the wheel over the map, pan with a drag
        page.locator("#map-fleet").scroll_into_view_if_needed()
        box = page.locator("#map-fleet").bounding_box()
        scale0, centre0 = page.evaluate(_MAP_SCALE, "map-fleet"), page.evaluate(_MAP_CENTRE, "map-fleet")
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(600)
        scale1 = page.evaluate(_MAP_SCALE, "map-fleet")
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.3, steps=10)
        page.mouse.up()
        page.wait_for_timeout(400)
        centre1 = page.evaluate(_MAP_CENTRE, "map-fleet")
        # the legend is the layer switch: a click hides the first layer shown
        first_shown = next(i for i, t in enumerate(traces) if t[1])
        page.locator("#map-fleet .legend .traces").nth(first_shown).click()
        page.wait_for_timeout(1000)  # plotly waits out its double-click delay (300 ms) before a single click acts
        switched = page.evaluate(f"() => document.getElementById('map-fleet')._fullData[{first_shown}].visible")
        page.evaluate("() => window.scrollTo(0, 0)")
        sections = page.evaluate("() => [...document.querySelectorAll('section')].map(s => s.id)")
        for section in sections:
            page.locator(f"section#{section}").screenshot(path=str(SCREENSHOTS / f"{section}.png"))
        browser.close()
    print("map layers:", layers)
    print("charts:", [(c[0], c[1]) for c in charts])
    print("screenshots:", SCREENSHOTS)
    assert errors == [], errors
    assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), [u for u in requests if not u.startswith(("file:", "data:", "blob:"))]
    for key, n in expected["layers"].items():
        assert key in layers and layers[key][1] == n, (key, layers.get(key), n)
    for key, total in expected["cell_sums"].items():
        assert key in layers and layers[key][2] == total, (key, layers.get(key), total)
    markers = sum(rows for _, shown, rows, _, kind in traces if shown and kind == "markers")
    cells = sum(rows for _, shown, rows, _, kind in traces if shown and kind == "cells")
    assert drawn == [markers, cells], (drawn, markers, cells)
    assert scale1 > scale0 * 1.2, (scale0, scale1)
    assert centre1 != centre0
    assert switched == "legendonly"
    rendered = {c[0] for c in charts if c[1] > 0 and c[2] > 100 and c[3] > 100}
    missing = set(expected["charts"]) - rendered
    assert not missing, f"charts not rendered: {missing}"
    assert sorted(p.stem for p in SCREENSHOTS.glob("*.png")) == sorted(sections)


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
        self._chart = self._table = None
        self._cell: list[str] | None = None
        self._tile: list[str] | None = None
        self._tile_value: str | None = None
        self._in_b = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "section":
            self.sections.append(a["id"])
        elif tag == "figure" and "map-figure" in classes:
            self.layers |= {f"{a['data-map']}|{name}": n for name, n in json.loads(a["data-layers"]).items()}
        elif tag == "figure" and "chart" in classes:
            self._chart = a["data-chart"]
            self.charts[self._chart] = int(a["data-points"])
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
        if tag == "figcaption" and self._caption is not None:
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
    for key in expected["cell_sums"]:
        assert parsed.layers.get(key, 0) >= 1, (key, parsed.layers)
    drawn = {c for c, n in parsed.charts.items() if n > 0}
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
