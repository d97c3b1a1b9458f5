"""The HTML report: self-contained, renders in a real headless Chromium without console errors,
map layers carry the expected markers, charts are drawn, residences only coarsened."""

from __future__ import annotations

import re
import shutil

import pytest

from common import report as R

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
