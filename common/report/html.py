"""Self-contained interactive HTML report: plotly maps and charts, its JavaScript inlined once, no CDN.

Why plotly: it is maintained, its wheel carries plotly.js, so the page embeds the library from the
Python package with no network at build or view time, and one library draws both the maps (pan,
zoom, hover, the legend as the layer switch) and the charts. Folium and Leaflet load their
JavaScript and CSS from a CDN.

Maps are plotly `geo` subplots (SVG, Mercator) with every base layer off, so nothing is fetched.
plotly's tile maps (`scattermap`, MapLibre) were tried and left: MapLibre ignores its web workers'
messages on a page opened from a file in Chromium (the page's origin is "null"), so the map stays
blank unless the report is served over http. Every map layer is one trace whose `meta` holds its
name and row counts, and its figure lists them in `data-layers`; every chart's figure says how many
values it draws in `data-points`. Map coordinates are written with `report.map_coordinate_decimals`
decimals: a city-scale map does not need more, and no position in the file then identifies a
doorstep.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
# Scroll zoom is what a map reader expects.
MAP_CONFIG = {"displaylogo": False, "scrollZoom": True, "responsive": True}
CHART_CONFIG = {"displaylogo": False, "responsive": True}
# Margin around the mapped positions, as a share of their extent on each side.
_MAP_MARGIN = 0.05


@dataclass
class Layer:
    """One map layer of markers with lat/lon (and optional size/label columns).

    Attributes
    ----------
    name : str
        Legend name and `meta.layer` of the trace.
    points : pandas.DataFrame
        One row per marker with `lat`, `lon` (degrees WGS84) and the optional columns below.
    color : str
        CSS colour of the markers.
    radius_col : str, optional
        Column with the marker radius (px, clipped to 2.5-16); None: 4 px.
    label_col : str, optional
        Column shown when the pointer is over a marker.
    total : int, optional
        Rows the layer's table has when `points` is a capped subset (the legend then says so).
    visible : bool
        Shown when the page opens; False: listed in the legend, switched on by a click.
    """

    name: str
    points: pd.DataFrame
    color: str
    radius_col: str | None = None
    label_col: str | None = None
    total: int | None = None
    visible: bool = True


@dataclass
class AreaLayer:
    """One map layer of polygons: filled by a value (hexagon density) or outlined (hulls).

    Attributes
    ----------
    name : str
        Legend name and `meta.layer` of the trace.
    shapes : pandas.DataFrame
        One row per polygon: `geojson` (a GeoJSON Polygon or MultiPolygon, lon/lat degrees) and
        the optional columns below.
    color : str
        Outline colour; with `value_col`, the high end of the colour scale.
    value_col : str, optional
        Column that fills the polygons on a white-to-`color` scale (e.g. drivers per cell); None:
        outlines with a light fill.
    label_col : str, optional
        Column shown when the pointer is over a polygon.
    total : int, optional
        Rows the layer's table has when `shapes` is a capped subset.
    visible : bool
        Shown when the page opens; False: listed in the legend, switched on by a click.
    """

    name: str
    shapes: pd.DataFrame
    color: str
    value_col: str | None = None
    label_col: str | None = None
    total: int | None = None
    visible: bool = True


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
def _plot_div(div_id: str, fig, config: dict, height: int) -> str:
    """The figure as a `<div>` and the script that draws it (plotly.js is on the page once)."""
    import plotly.io as pio

    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id, config=config, default_width="100%", default_height=f"{height}px", validate=True)


def _legend_name(name: str, shown: int, total: int | None) -> str:
    """Legend text: the layer and its row count, saying when the layer is capped."""
    if total is not None and total > shown:
        return f"{name} ({shown:,} of {total:,} shown)"
    return f"{name} ({shown:,})"


def _rounded(values, decimals: int) -> list:
    """Plain floats (written as text, not binary) rounded to `decimals`."""
    return [round(float(v), decimals) for v in values]


def _rings(geojson: dict) -> list[list[list[float]]]:
    """Exterior rings of a GeoJSON Polygon or MultiPolygon (other types: none)."""
    if geojson.get("type") == "Polygon":
        return [geojson["coordinates"][0]]
    if geojson.get("type") == "MultiPolygon":
        return [poly[0] for poly in geojson["coordinates"]]
    return []


def _round_geometry(geojson: dict, decimals: int) -> dict:
    """The polygon's exterior rings with their coordinates rounded (shared edges stay shared)."""
    rings = [[[round(x, decimals), round(y, decimals)] for x, y in ring] for ring in _rings(geojson)]
    return {"type": "MultiPolygon", "coordinates": [[ring] for ring in rings]}


def _view(lons: list[float], lats: list[float], decimals: int) -> dict:
    """Longitude and latitude ranges that frame the positions, with a margin (rounded like them)."""
    lon0, lon1, lat0, lat1 = min(lons), max(lons), min(lats), max(lats)
    dx = max((lon1 - lon0) * _MAP_MARGIN, 0.005)
    dy = max((lat1 - lat0) * _MAP_MARGIN, 0.005)
    return {"lonaxis": {"range": _rounded([lon0 - dx, lon1 + dx], decimals)}, "lataxis": {"range": _rounded([lat0 - dy, lat1 + dy], decimals)}}


def map_figure(layers: list[Layer | AreaLayer], area_rings: list[list[tuple[float, float]]], decimals: int):
    """The interactive map as a plotly figure (the report's and the notebooks').

    Parameters
    ----------
    layers : list of Layer or AreaLayer
        Drawn in order (later on top); one legend entry each, empty layers left out. The view
        frames the area and the layers shown when the page opens.
    area_rings : list of list of tuple of float
        Outline rings of the operating area as (lon, lat) degrees (`area_rings_from_wkt`); may be empty.
    decimals : int
        Decimals of every coordinate written to the figure.

    Returns
    -------
    tuple
        (plotly Figure, {layer: rows shown}); the figure is None when there is neither an area nor
        any row.
    """
    import plotly.graph_objects as go

    traces, counts = [], {}
    lons = [x for ring in area_rings for x, _ in ring]
    lats = [y for ring in area_rings for _, y in ring]
    hidden_lons: list[float] = []  # frame hidden layers when nothing else is there to frame
    hidden_lats: list[float] = []
    if area_rings:  # one trace (one legend entry) for every ring, rings separated by gaps
        traces.append(
            go.Scattergeo(
                lon=[v for ring in area_rings for v in [*_rounded([x for x, _ in ring], decimals), None]][:-1],
                lat=[v for ring in area_rings for v in [*_rounded([y for _, y in ring], decimals), None]][:-1],
                mode="lines",
                line={"color": "#7a8f6a", "width": 2},
                name="operating area",
                hoverinfo="skip",
                meta={"layer": "operating area"},
            )
        )
    for ly in layers:
        meta_name = {"visible": True if ly.visible else "legendonly"}
        if isinstance(ly, Layer):
            pts = ly.points.dropna(subset=["lat", "lon"])
            if pts.empty:
                continue
            n = len(pts)
            size = 8.0 if ly.radius_col is None else _rounded(np.clip(pts[ly.radius_col].astype(float), 2.5, 16) * 2, 1)
            text = None if ly.label_col is None else pts[ly.label_col].astype(str).tolist()
            traces.append(
                go.Scattergeo(
                    lon=_rounded(pts["lon"], decimals),
                    lat=_rounded(pts["lat"], decimals),
                    mode="markers",
                    marker={"size": size, "color": ly.color, "opacity": 0.8, "line": {"width": 0.5, "color": "#222"}},
                    text=text,
                    hoverinfo="text+name" if text else "name",
                    name=_legend_name(ly.name, n, ly.total),
                    meta={"layer": ly.name, "rows": n, "total": ly.total if ly.total is not None else n},
                    **meta_name,
                )
            )
            (lons if ly.visible else hidden_lons).extend(pts["lon"].astype(float).tolist())
            (lats if ly.visible else hidden_lats).extend(pts["lat"].astype(float).tolist())
        else:
            shapes = ly.shapes.dropna(subset=["geojson"])
            geoms = [_round_geometry(json.loads(g), decimals) for g in shapes["geojson"]]
            keep = [i for i, g in enumerate(geoms) if g["coordinates"]]
            if not keep:
                continue
            shapes, geoms = shapes.iloc[keep], [geoms[i] for i in keep]
            n = len(shapes)
            text = None if ly.label_col is None else shapes[ly.label_col].astype(str).tolist()
            common = {"name": _legend_name(ly.name, n, ly.total), "meta": {"layer": ly.name, "rows": n, "total": ly.total if ly.total is not None else n}, **meta_name}
            if ly.value_col is not None:
                features = [{"type": "Feature", "id": str(i), "geometry": g, "properties": {}} for i, g in enumerate(geoms)]
                traces.append(
                    go.Choropleth(
                        geojson={"type": "FeatureCollection", "features": features},
                        locations=[str(i) for i in range(n)],
                        z=shapes[ly.value_col].astype(float).tolist(),
                        featureidkey="id",
                        colorscale=[[0.0, "#ffffff"], [1.0, ly.color]],
                        zmin=0,
                        marker={"opacity": 0.6, "line": {"width": 0.5, "color": ly.color}},
                        text=text,
                        hoverinfo="text+name" if text else "z+name",
                        showscale=False,
                        showlegend=True,
                        **common,
                    )
                )
            else:  # outlines: one trace, rings separated by gaps
                xs: list[float | None] = []
                ys: list[float | None] = []
                labels: list[str | None] = []
                for g, label in zip(geoms, text or [None] * n):
                    for ring in g["coordinates"]:
                        xs += [p[0] for p in ring[0]] + [None]
                        ys += [p[1] for p in ring[0]] + [None]
                        labels += [label] * len(ring[0]) + [None]
                traces.append(
                    go.Scattergeo(
                        lon=xs,
                        lat=ys,
                        mode="lines",
                        fill="toself",
                        fillcolor="rgba(255,127,14,0.15)",
                        line={"color": ly.color, "width": 1.5},
                        text=labels,
                        hoverinfo="text+name" if text else "name",
                        **common,
                    )
                )
            for g in geoms:
                for ring in g["coordinates"]:
                    (lons if ly.visible else hidden_lons).extend(p[0] for p in ring[0])
                    (lats if ly.visible else hidden_lats).extend(p[1] for p in ring[0])
        counts[ly.name] = n
    if not lons:
        lons, lats = hidden_lons, hidden_lats
    if not lons:
        return None, counts
    fig = go.Figure(traces)
    # Every base layer off: plotly would fetch its land and coastline outlines from a CDN.
    bare = {f"show{k}": False for k in ("land", "coastlines", "countries", "lakes", "ocean", "rivers", "subunits", "frame")}
    fig.update_geos(projection_type="mercator", bgcolor="#f7f7f4", **bare, **_view(lons, lats, decimals))
    fig.update_layout(margin={"l": 0, "r": 0, "t": 0, "b": 0}, legend={"x": 0.01, "y": 0.99, "bgcolor": "rgba(255,255,255,0.85)", "title": {"text": "Layers (click to switch)"}}, dragmode="pan")
    return fig, counts


def web_map(map_id: str, title: str, layers: list[Layer | AreaLayer], area_rings: list[list[tuple[float, float]]], decimals: int, height: int = 620) -> str:
    """An interactive map of layers over the operating-area outline; the legend switches layers.

    Parameters
    ----------
    map_id : str
        HTML id of the plot and `data-map` of its figure.
    title : str
        Caption.
    layers : list of Layer or AreaLayer
        As `map_figure`.
    area_rings : list of list of tuple of float
        As `map_figure`.
    decimals : int
        Decimals of every coordinate written to the page.
    height : int
        Height of the map (px).

    Returns
    -------
    str
        A `<figure class="map-figure">` with the plot, `data-layers` = {layer: rows shown}; a
        `<p class="empty">` note when there is neither an area nor any row.
    """
    fig, counts = map_figure(layers, area_rings, decimals)
    if fig is None:
        return f'<p class="empty">No data for {esc(title)}.</p>'
    return (
        f'<figure class="map-figure" data-map="{esc(map_id)}" data-layers=\'{esc(json.dumps(counts))}\'>'
        + _plot_div(map_id, fig, MAP_CONFIG, height)
        + f"<figcaption>{esc(title)}</figcaption></figure>"
    )


def area_rings_from_wkt(wkt: str) -> list[list[tuple[float, float]]]:
    """Exterior rings of an operating-area polygon, for `web_map`.

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


def hull_geojson(wkt: str | None) -> str | None:
    """A hull's WKT as a GeoJSON polygon, for an outline `AreaLayer`.

    Parameters
    ----------
    wkt : str or None
        WKT of a convex hull (lon lat); a hull of one or two positions is a point or a line.

    Returns
    -------
    str or None
        GeoJSON text of the polygon; None for a point, a line or no hull.
    """
    if not wkt:
        return None
    from shapely import geometry
    from shapely import wkt as shapely_wkt

    geom = shapely_wkt.loads(wkt)
    if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
        return None
    return json.dumps(geometry.mapping(geom))


# ----------------------------------------------------------------------------------------------
# Charts
# ----------------------------------------------------------------------------------------------
def chart(chart_id: str, fig, caption: str, points: int, height: int = 340) -> str:
    """A plotly figure as a captioned, interactive chart.

    Parameters
    ----------
    chart_id : str
        `data-chart` attribute of the figure and id of the plot.
    fig : plotly.graph_objects.Figure
        The chart.
    caption : str
        Figure caption (escaped); say here when the data are capped or sampled.
    points : int
        Values drawn (`data-points`).
    height : int
        Height (px).

    Returns
    -------
    str
        `<figure class="chart" data-chart=... data-points=...>` HTML.
    """
    fig.update_layout(margin={"l": 60, "r": 20, "t": 20, "b": 50}, template="plotly_white")
    div = _plot_div(f"chart-{chart_id}", fig, CHART_CONFIG, height)
    return f'<figure class="chart" data-chart="{esc(chart_id)}" data-points="{points}">{div}<figcaption>{esc(caption)}</figcaption></figure>'


def _values(xs) -> list:
    """Plain values for a chart (NaN and missing as None, so they show as gaps)."""
    return [None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v for v in (x.item() if hasattr(x, "item") else x for x in xs)]


def line_chart(chart_id: str, x, series: dict[str, list], title: str, ylabel: str) -> str:
    """A line chart, one line per series.

    Parameters
    ----------
    chart_id : str
        `data-chart` attribute of the figure.
    x : sequence
        x values shared by all series (dates are shown as dates).
    series : dict of str to list
        Series name -> y values, one per x; the legend switches them.
    title : str
        Chart title, also the caption.
    ylabel : str
        y-axis label (give the unit).

    Returns
    -------
    str
        `chart` HTML.
    """

    return chart(chart_id, line_figure(x, series, ylabel), title, sum(len(v) for v in series.values()))


def line_figure(x, series: dict[str, list], ylabel: str):
    """The figure of `line_chart` (also shown in the notebooks).

    Parameters
    ----------
    x : sequence
        x values shared by all series.
    series : dict of str to list
        Series name -> y values.
    ylabel : str
        y-axis label.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    xs = [str(v.date()) if hasattr(v, "date") else v for v in x]
    fig = go.Figure([go.Scatter(x=xs, y=_values(ys), mode="lines+markers", name=name, line={"color": PALETTE[i % len(PALETTE)]}) for i, (name, ys) in enumerate(series.items())])
    fig.update_layout(yaxis_title=ylabel, showlegend=len(series) > 1, template="plotly_white")
    return fig


def bar_chart(chart_id: str, labels: list, series: dict[str, list], title: str, ylabel: str, horizontal: bool = False) -> str:
    """A grouped bar chart, one bar per label and series.

    Parameters
    ----------
    chart_id : str
        `data-chart` attribute of the figure.
    labels : list
        Category labels, one group of bars each.
    series : dict of str to list
        Series name -> one value per label; the legend switches them.
    title : str
        Chart title, also the caption.
    ylabel : str
        Value-axis label (give the unit); the x axis when `horizontal`.
    horizontal : bool
        Horizontal bars (the chart grows with the number of labels).

    Returns
    -------
    str
        `chart` HTML.
    """

    height = max(340, 22 * len(labels) * max(1, len(series)) + 120) if horizontal else 340
    return chart(chart_id, bar_figure(labels, series, ylabel, horizontal), title, sum(len(v) for v in series.values()), height)


def bar_figure(labels: list, series: dict[str, list], ylabel: str, horizontal: bool = False):
    """The figure of `bar_chart` (also shown in the notebooks).

    Parameters
    ----------
    labels : list
        Category labels.
    series : dict of str to list
        Series name -> one value per label.
    ylabel : str
        Value-axis label.
    horizontal : bool
        Horizontal bars.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    cats = [str(lb) for lb in labels]
    bars = []
    for i, (name, vals) in enumerate(series.items()):
        xy = {"x": _values(vals), "y": cats} if horizontal else {"x": cats, "y": _values(vals)}
        bars.append(go.Bar(name=name, orientation="h" if horizontal else "v", marker_color=PALETTE[i % len(PALETTE)], **xy))
    fig = go.Figure(bars)
    axes = {"xaxis_title": ylabel, "yaxis": {"autorange": "reversed"}} if horizontal else {"yaxis_title": ylabel}
    fig.update_layout(barmode="group", showlegend=len(series) > 1, template="plotly_white", **axes)
    return fig


def histogram(chart_id: str, edges, counts, title: str, xlabel: str, vline: float | None = None) -> str:
    """A histogram from bin edges and counts computed over the whole table (no sample).

    Parameters
    ----------
    chart_id : str
        `data-chart` attribute of the figure.
    edges : sequence of float
        Bin edges, one more than `counts` (ascending).
    counts : sequence of int
        Rows per bin.
    title : str
        Chart title, also the caption.
    xlabel : str
        x-axis label (give the unit).
    vline : float, optional
        x of a dashed reference line (same unit as the values), labelled with its value.

    Returns
    -------
    str
        `chart` HTML.
    """

    return chart(chart_id, histogram_figure(edges, counts, xlabel, vline), title, len(counts))


def histogram_figure(edges, counts, xlabel: str, vline: float | None = None):
    """The figure of `histogram` (also shown in the notebooks).

    Parameters
    ----------
    edges : sequence of float
        Bin edges, one more than `counts`.
    counts : sequence of int
        Rows per bin.
    xlabel : str
        x-axis label.
    vline : float, optional
        x of a dashed reference line.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    e = np.asarray(edges, dtype=float)
    n = [int(c) for c in counts]
    fig = go.Figure(
        go.Bar(
            x=_rounded((e[:-1] + e[1:]) / 2, 6),
            y=n,
            width=_rounded(np.diff(e), 6),
            marker_color=PALETTE[0],
            customdata=np.column_stack([e[:-1], e[1:]]).round(6).tolist(),
            hovertemplate="%{customdata[0]} to %{customdata[1]}: %{y}<extra></extra>",
            name="rows",
        )
    )
    if vline is not None:
        fig.add_vline(x=vline, line_dash="dash", line_color=PALETTE[1], annotation_text=f"{vline:g}")
    fig.update_layout(xaxis_title=xlabel, yaxis_title="count", bargap=0.02, showlegend=False)
    fig.update_layout(template="plotly_white")
    return fig


def heatmap(chart_id: str, values, row_labels: list, col_labels: list, title: str, unit: str) -> str:
    """A matrix as coloured cells with a colour bar.

    Parameters
    ----------
    chart_id : str
        `data-chart` attribute of the figure.
    values : array-like of shape (rows, columns)
        Cell values; NaN cells are left blank.
    row_labels, col_labels : list
        Labels of the rows (y) and columns (x).
    title : str
        Chart title, also the caption.
    unit : str
        Colour bar title (give the unit).

    Returns
    -------
    str
        `chart` HTML.
    """
    import plotly.graph_objects as go

    grid = np.asarray(values, dtype=float)
    z = [[None if not np.isfinite(v) else round(float(v), 6) for v in row] for row in grid]
    fig = go.Figure(go.Heatmap(z=z, x=[str(c) for c in col_labels], y=[str(r) for r in row_labels], colorscale="Viridis", colorbar={"title": {"text": unit}}, hoverongaps=False))
    fig.update_layout(yaxis={"autorange": "reversed"})
    return chart(chart_id, fig, title, int(np.isfinite(grid).sum()), 300)


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
    import plotly.graph_objects as go

    est, lo, hi = (np.asarray(v, dtype=float) for v in (estimate, low, high))
    names = [str(lb) for lb in labels]
    fig = go.Figure(
        go.Scatter(
            x=_rounded(est, 6),
            y=names,
            mode="markers",
            marker={"color": PALETTE[0], "size": 8},
            error_x={"type": "data", "symmetric": False, "array": _rounded(hi - est, 6), "arrayminus": _rounded(est - lo, 6)},
            name="estimate",
        )
    )
    fig.add_vline(x=reference, line_dash="dash", line_color=PALETTE[1])
    fig.update_layout(xaxis={"type": "log", "title": xlabel}, yaxis={"autorange": "reversed"}, showlegend=False)
    return chart(chart_id, fig, title, len(names), max(260, 26 * len(names) + 100))


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
figure.chart{width:calc(50% - 20px);min-width:480px}figure.map-figure{display:block;width:100%;margin-right:0}
figcaption{font-size:12px;color:#555}table.data{border-collapse:collapse;font-size:12px;margin:8px 0}
table.data th,table.data td{border-bottom:1px solid #e3e3e3;padding:3px 8px;text-align:right}
table.data th{background:#f3f5f7}.note{font-size:12px;color:#666}.empty{color:#999;font-style:italic}
.kpi{display:inline-block;margin:6px 18px 6px 0}.kpi b{display:block;font-size:22px;color:#16324f}
"""


def page(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole self-contained HTML document: header, navigation, sections, inline CSS and plotly.js.

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
    from plotly.offline import get_plotlyjs

    nav = " ".join(f'<a href="#{s.id}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(s.html() for s in sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title><style>{CSS}</style>"
        f"<script>{get_plotlyjs()}</script></head>"
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


def load_profile_chart(chart_id: str, x: list, loads: dict[str, list], limits: dict[str, list], prices: list, title: str) -> str:
    """Power per time slot against limits (dashed) and the tariff (steps, right axis).

    Parameters
    ----------
    chart_id : str
        `data-chart` attribute of the figure.
    x : list
        Slot labels (local time).
    loads : dict of str to list
        Series name -> kW per slot.
    limits : dict of str to list
        Series name of `loads` -> its limit (kW) per slot, drawn dashed in that series' colour.
    prices : list
        Tariff price per kWh per slot.
    title : str
        Chart title, also the caption.

    Returns
    -------
    str
        `chart` HTML.
    """
    return chart(chart_id, load_profile_figure(x, loads, limits, prices), title, sum(len(v) for v in (*loads.values(), *limits.values())) + len(prices))


def load_profile_figure(x: list, loads: dict[str, list], limits: dict[str, list], prices: list):
    """The figure of `load_profile_chart` (also shown in the notebooks).

    Bars are grouped, not stacked: each limit belongs to one series, drawn dashed in its colour and
    legend group, so a bar is read against its own line only.

    Parameters
    ----------
    x : list
        Slot labels.
    loads : dict of str to list
        Series name -> kW per slot.
    limits : dict of str to list
        Series name of `loads` -> its limit (kW) per slot.
    prices : list
        Tariff price per kWh per slot (None where unknown).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(loads)}
    traces = [go.Bar(x=x, y=_values(ys), name=name, legendgroup=name, marker={"color": colour[name]}) for name, ys in loads.items()]
    traces += [go.Scatter(x=x, y=_values(ys), name=f"{name}: limit", legendgroup=name, mode="lines", line={"color": colour.get(name, "#999999"), "dash": "dash"}) for name, ys in limits.items()]
    traces.append(go.Scatter(x=x, y=_values(prices), name="tariff (right axis)", mode="lines", line={"color": "#555555", "shape": "hv"}, yaxis="y2"))
    fig = go.Figure(traces)
    fig.update_layout(barmode="group", yaxis_title="kW", yaxis2={"title": "price per kWh", "overlaying": "y", "side": "right", "rangemode": "tozero"}, template="plotly_white")
    return fig
