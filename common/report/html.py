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
    """One map layer: points with lat/lon (and optional size/label columns).

    Attributes
    ----------
    name : str
        Legend and `data-layer` name.
    points : pandas.DataFrame
        One row per marker with `lat`, `lon` (degrees WGS84) and the optional columns below.
    color : str
        CSS fill colour of the markers.
    radius_col : str, optional
        Column with the marker radius (SVG pixels, clipped to 2.5-16); None: 4 px.
    label_col : str, optional
        Column shown as the marker's tooltip.
    shape : str
        'circle' or 'square'.
    """

    name: str
    points: pd.DataFrame
    color: str
    radius_col: str | None = None
    label_col: str | None = None
    shape: str = "circle"  # circle | square


@dataclass
class Section:
    """One report section: a heading and HTML fragments, linked from the page's navigation.

    Attributes
    ----------
    id : str
        HTML id of the `<section>` (the navigation link's anchor).
    title : str
        Heading text (escaped on output).
    body : list of str
        HTML fragments, in order.
    """

    id: str
    title: str
    body: list[str] = field(default_factory=list)

    def add(self, fragment: str) -> Section:
        """Append an HTML fragment to the body.

        Parameters
        ----------
        fragment : str
            HTML, already escaped.

        Returns
        -------
        Section
            This section, so calls can be chained.
        """
        self.body.append(fragment)
        return self

    def html(self) -> str:
        """The section as HTML.

        Returns
        -------
        str
            `<section id=...>` with the escaped title as `<h2>` and the body fragments.
        """
        return f'<section id="{self.id}"><h2>{html.escape(self.title)}</h2>\n' + "\n".join(self.body) + "</section>"


def esc(value) -> str:
    """HTML-escape any value's text.

    Parameters
    ----------
    value : object
        Anything; converted with `str`.

    Returns
    -------
    str
        The escaped text (quotes included), safe in element content and attribute values.
    """
    return html.escape(str(value))


# ----------------------------------------------------------------------------------------------
# Maps
# ----------------------------------------------------------------------------------------------
def svg_map(map_id: str, title: str, layers: list[Layer], area_rings: list[list[tuple[float, float]]], width: int = 760, height: int = 520) -> str:
    """An SVG map of marker layers over the operating-area outline, with a legend.

    Parameters
    ----------
    map_id : str
        HTML id of the `<svg>` and `data-map` of its figure.
    title : str
        Caption and accessible label.
    layers : list of Layer
        Marker layers, drawn in order (later layers on top); one legend entry each.
    area_rings : list of list of tuple of float
        Outline rings of the operating area as (lon, lat) degrees (`area_rings_from_wkt`); may be empty.
    width, height : int
        Size of the drawing (SVG pixels).

    Returns
    -------
    str
        A `<figure class="map-figure">` with the inline SVG, or a `<p class="empty">` note when
        there is neither an area nor any point.
    """
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
        """Project a position to the drawing.

        Parameters
        ----------
        lon, lat : float
            Degrees WGS84.

        Returns
        -------
        tuple of float
            (x, y) in SVG pixels, y growing downwards.
        """
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
    """Exterior rings of an operating-area polygon, for `svg_map`.

    Parameters
    ----------
    wkt : str
        WKT Polygon or MultiPolygon, coordinates in (lon lat) degrees WGS84.

    Returns
    -------
    list of list of tuple of float
        One ring per polygon, each a list of (lon, lat) degrees; holes are left out.
    """
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
    """Wrap an inline SVG chart in a captioned figure.

    Parameters
    ----------
    chart_id : str
        `data-chart` attribute of the figure.
    svg : str
        The `<svg>` element.
    caption : str
        Figure caption (escaped).

    Returns
    -------
    str
        `<figure class="chart" data-chart=...>` HTML.
    """
    return f'<figure class="chart" data-chart="{esc(chart_id)}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def line_chart(chart_id: str, x, series: dict[str, list], title: str, ylabel: str) -> str:
    """A line chart (one line per series) as an inline SVG figure.

    Parameters
    ----------
    chart_id : str
        `data-chart` attribute of the figure.
    x : sequence
        x values shared by all series (dates are formatted by matplotlib).
    series : dict of str to list
        Series name -> y values, one per x; a legend is drawn when there are several.
    title : str
        Chart title, also the caption.
    ylabel : str
        y-axis label (give the unit).

    Returns
    -------
    str
        `chart` HTML.
    """
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
    """A grouped bar chart (one bar per label and series) as an inline SVG figure.

    Parameters
    ----------
    chart_id : str
        `data-chart` attribute of the figure.
    labels : list
        Category labels, one group of bars each.
    series : dict of str to list
        Series name -> one value per label; a legend is drawn when there are several.
    title : str
        Chart title, also the caption.
    ylabel : str
        Value-axis label (give the unit); the x axis when `horizontal`.
    horizontal : bool
        Horizontal bars (the figure grows with the number of labels).

    Returns
    -------
    str
        `chart` HTML.
    """
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
    """A histogram (y: count) as an inline SVG figure.

    Parameters
    ----------
    chart_id : str
        `data-chart` attribute of the figure.
    values : iterable of float
        Values to count; None and non-finite values are left out.
    title : str
        Chart title, also the caption.
    xlabel : str
        x-axis label (give the unit).
    vline : float, optional
        x of a dashed reference line (same unit as `values`), shown in the legend.
    bins : int
        Number of bins.

    Returns
    -------
    str
        `chart` HTML.
    """
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


def heatmap(chart_id: str, values, row_labels: list, col_labels: list, title: str, unit: str) -> str:
    """A matrix as coloured cells with a colour bar, as an inline SVG figure.

    Parameters
    ----------
    chart_id : str
        `data-chart` attribute of the figure.
    values : array-like of shape (rows, columns)
        Cell values; NaN cells are left blank.
    row_labels, col_labels : list
        Tick labels of the rows (y) and columns (x).
    title : str
        Chart title, also the caption.
    unit : str
        Colour bar label (give the unit).

    Returns
    -------
    str
        `chart` HTML.
    """
    fig, ax = _figure(7.0, 2.8)
    ax.grid(False)
    img = ax.imshow(np.asarray(values, dtype=float), aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(row_labels)), [str(r) for r in row_labels])
    step = max(1, len(col_labels) // 12)
    ax.set_xticks(range(0, len(col_labels), step), [str(c) for c in col_labels][::step])
    fig.colorbar(img, ax=ax, label=unit)
    ax.set_title(title)
    return chart(chart_id, _svg(fig), title)


def forest_plot(chart_id: str, labels: list, estimate, low, high, title: str, xlabel: str, reference: float = 1.0) -> str:
    """Estimates with their confidence intervals, one row each, on a log axis (odds ratios).

    Parameters
    ----------
    chart_id : str
        `data-chart` attribute of the figure.
    labels : list
        Row labels, top to bottom.
    estimate, low, high : array-like of float
        Point estimate and interval bounds per row (> 0: the axis is logarithmic).
    title : str
        Chart title, also the caption.
    xlabel : str
        x-axis label.
    reference : float
        x of the dashed no-effect line.

    Returns
    -------
    str
        `chart` HTML.
    """
    est, lo, hi = (np.asarray(v, dtype=float) for v in (estimate, low, high))
    fig, ax = _figure(7.0, max(2.4, 0.32 * len(labels) + 1.0))
    y = np.arange(len(labels))[::-1]
    ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", color=PALETTE[0], ecolor=PALETTE[0], capsize=3)
    ax.axvline(reference, color="#d62728", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yticks(y, [str(lb) for lb in labels], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return chart(chart_id, _svg(fig), title)


def table_html(df: pd.DataFrame, table_id: str, float_format: str = "{:,.2f}") -> str:
    """A pandas frame as an HTML `<table class="data">` (no index, missing values as '–').

    Parameters
    ----------
    df : pandas.DataFrame
        Rows to show (already bounded).
    table_id : str
        HTML id of the table.
    float_format : str
        `str.format` pattern for float cells.

    Returns
    -------
    str
        The table HTML.
    """
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
    """The whole self-contained HTML document: header, navigation, sections and inline CSS.

    Parameters
    ----------
    title : str
        Page title and heading.
    subtitle : str
        Line under the heading.
    sections : list of Section
        Sections in page order, one navigation link each.

    Returns
    -------
    str
        The HTML document.
    """
    nav = " ".join(f'<a href="#{s.id}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(s.html() for s in sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{nav}</nav><main>{body}</main></body></html>"
    )


def kpi_tiles(items: list[tuple[str, str]]) -> str:
    """Headline numbers as tiles: the value in bold above its label.

    Parameters
    ----------
    items : list of tuple of str
        (label, formatted value) pairs, in display order.

    Returns
    -------
    str
        `<div class='kpis'>` HTML.
    """
    return "<div class='kpis'>" + "".join(f"<div class='kpi'><b>{esc(v)}</b>{esc(k)}</div>" for k, v in items) + "</div>"
