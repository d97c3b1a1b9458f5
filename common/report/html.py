"""Self-contained static HTML report: inline SVG maps and charts, no CDN, works offline.

Maps are drawn as SVG in an equirectangular projection around the operating area (which is
drawn as the background outline); each marker is an SVG <circle class="marker"> inside a
<g class="layer" data-layer="..."> so a browser test can count them. Charts are matplotlib
figures serialised to inline SVG (`<figure class="chart" data-chart="...">`).

We draw maps ourselves instead of using folium/Leaflet because those load their JavaScript and
tiles from a CDN, and the report must render offline.
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass
class Layer:
    """One map layer: points with lat/lon (and optional size/label columns)."""

    name: str
    points: pd.DataFrame
    color: str
    radius_col: str | None = None
    label_col: str | None = None
    shape: str = "circle"  # circle | square


@dataclass
class Section:
    id: str
    title: str
    body: list[str] = field(default_factory=list)

    def add(self, fragment: str) -> Section:
        self.body.append(fragment)
        return self

    def html(self) -> str:
        return f'<section id="{self.id}"><h2>{html.escape(self.title)}</h2>\n' + "\n".join(self.body) + "</section>"


def esc(value) -> str:
    return html.escape(str(value))


# ----------------------------------------------------------------------------------------------
# Maps
# ----------------------------------------------------------------------------------------------
def svg_map(map_id: str, title: str, layers: list[Layer], area_rings: list[list[tuple[float, float]]], width: int = 760, height: int = 520) -> str:
    """An SVG map of marker layers over the operating-area outline, with a legend."""
    lons = [x for ring in area_rings for x, _ in ring] + [v for ly in layers for v in ly.points["lon"].tolist()]
    lats = [y for ring in area_rings for _, y in ring] + [v for ly in layers for v in ly.points["lat"].tolist()]
    if not lons:
        return f'<p class="empty">No data for {esc(title)}.</p>'
    lon0, lon1, lat0, lat1 = min(lons), max(lons), min(lats), max(lats)
    kx = math.cos(math.radians((lat0 + lat1) / 2))
    span_x = max((lon1 - lon0) * kx, 1e-6)
    span_y = max(lat1 - lat0, 1e-6)
    pad = 20
    scale = min((width - 2 * pad) / span_x, (height - 2 * pad) / span_y)

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return pad + (lon - lon0) * kx * scale, height - pad - (lat - lat0) * scale

    parts = [f'<svg class="map" id="{esc(map_id)}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{esc(title)}">']
    parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f7f7f4"/>')
    for ring in area_rings:
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(lo, la) for lo, la in ring))
        parts.append(f'<polygon class="area" points="{pts}" fill="#eef3e8" stroke="#7a8f6a" stroke-width="1.5"/>')
    legend = []
    for ly in layers:
        parts.append(f'<g class="layer" data-layer="{esc(ly.name)}" fill="{ly.color}" fill-opacity="0.7" stroke="#222" stroke-width="0.5">')
        for row in ly.points.itertuples(index=False):
            x, y = xy(row.lon, row.lat)
            r = 4.0
            if ly.radius_col:
                r = float(np.clip(getattr(row, ly.radius_col), 2.5, 16))
            label = esc(getattr(row, ly.label_col)) if ly.label_col else ""
            if ly.shape == "square":
                parts.append(f'<rect class="marker" x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}"><title>{label}</title></rect>')
            else:
                parts.append(f'<circle class="marker" cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}"><title>{label}</title></circle>')
        parts.append("</g>")
        legend.append((ly.name, ly.color, len(ly.points)))
    # legend
    ly0 = 14
    parts.append('<g class="legend" font-family="sans-serif" font-size="12">')
    for i, (name, color, n) in enumerate(legend):
        y = ly0 + i * 18
        parts.append(f'<circle cx="{width - 200}" cy="{y}" r="5" fill="{color}"/><text x="{width - 190}" y="{y + 4}">{esc(name)} ({n})</text>')
    parts.append("</g>")
    parts.append("</svg>")
    return f'<figure class="map-figure" data-map="{esc(map_id)}">' + "".join(parts) + f"<figcaption>{esc(title)}</figcaption></figure>"


def area_rings_from_wkt(wkt: str) -> list[list[tuple[float, float]]]:
    from shapely import wkt as shapely_wkt

    geom = shapely_wkt.loads(wkt)
    polys = list(geom.geoms) if hasattr(geom, "geoms") else [geom]
    return [list(p.exterior.coords) for p in polys]


# ----------------------------------------------------------------------------------------------
# Charts (matplotlib -> inline SVG)
# ----------------------------------------------------------------------------------------------
def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _figure(w: float = 7.0, h: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(w, h))
    ax.grid(alpha=0.3)
    return fig, ax


def chart(chart_id: str, svg: str, caption: str) -> str:
    return f'<figure class="chart" data-chart="{esc(chart_id)}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def line_chart(chart_id: str, x, series: dict[str, list], title: str, ylabel: str) -> str:
    fig, ax = _figure()
    for i, (name, ys) in enumerate(series.items()):
        ax.plot(x, ys, marker="o", ms=3, label=name, color=PALETTE[i % len(PALETTE)])
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return chart(chart_id, _svg(fig), title)


def bar_chart(chart_id: str, labels: list, series: dict[str, list], title: str, ylabel: str, horizontal: bool = False) -> str:
    fig, ax = _figure(7.0, max(3.2, 0.28 * len(labels)) if horizontal else 3.2)
    n = max(1, len(series))
    width = 0.8 / n
    idx = np.arange(len(labels))
    for i, (name, vals) in enumerate(series.items()):
        if horizontal:
            ax.barh(idx + i * width, vals, height=width, label=name, color=PALETTE[i % len(PALETTE)])
        else:
            ax.bar(idx + i * width, vals, width=width, label=name, color=PALETTE[i % len(PALETTE)])
    if horizontal:
        ax.set_yticks(idx + width * (n - 1) / 2, [str(lb) for lb in labels], fontsize=8)
        ax.set_xlabel(ylabel)
    else:
        ax.set_xticks(idx + width * (n - 1) / 2, [str(lb) for lb in labels], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
    ax.set_title(title)
    if n > 1:
        ax.legend(fontsize=8)
    return chart(chart_id, _svg(fig), title)


def histogram(chart_id: str, values, title: str, xlabel: str, vline: float | None = None, bins: int = 30) -> str:
    fig, ax = _figure()
    vals = np.asarray([v for v in values if v is not None and np.isfinite(v)])
    ax.hist(vals, bins=bins, color=PALETTE[0], alpha=0.8)
    if vline is not None:
        ax.axvline(vline, color="#d62728", ls="--", label=f"{vline:g}")
        ax.legend(fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return chart(chart_id, _svg(fig), title)


def table_html(df: pd.DataFrame, table_id: str, float_format: str = "{:,.2f}") -> str:
    return df.to_html(index=False, classes="data", table_id=table_id, float_format=lambda v: float_format.format(v), border=0, na_rep="–")


# ----------------------------------------------------------------------------------------------
# Page
# ----------------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fff}
header{background:#16324f;color:#fff;padding:16px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85;font-size:13px}
nav{padding:8px 28px;background:#eef2f6;font-size:13px}nav a{margin-right:14px;color:#16324f}
main{padding:8px 28px 40px;max-width:1200px}section{margin:28px 0;border-top:1px solid #ddd}
h2{font-size:18px;color:#16324f}figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}
figcaption{font-size:12px;color:#555}table.data{border-collapse:collapse;font-size:12px;margin:8px 0}
table.data th,table.data td{border-bottom:1px solid #e3e3e3;padding:3px 8px;text-align:right}
table.data th{background:#f3f5f7}.note{font-size:12px;color:#666}.empty{color:#999;font-style:italic}
.kpi{display:inline-block;margin:6px 18px 6px 0}.kpi b{display:block;font-size:22px;color:#16324f}
"""


def page(title: str, subtitle: str, sections: list[Section]) -> str:
    nav = " ".join(f'<a href="#{s.id}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(s.html() for s in sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{nav}</nav><main>{body}</main></body></html>"
    )


def kpi_tiles(items: list[tuple[str, str]]) -> str:
    return "<div class='kpis'>" + "".join(f"<div class='kpi'><b>{esc(v)}</b>{esc(k)}</div>" for k, v in items) + "</div>"
