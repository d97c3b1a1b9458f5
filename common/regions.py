"""Demo regions for the generator and default operating areas for cleaning.

The operating-area polygon used by cleaning comes from conf (a WKT or GeoJSON file); the
region here only tells the generator where to place people, places and stations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.config import CONF_DIR


@dataclass(frozen=True)
class Region:
    name: str
    center_lat: float
    center_lon: float
    radius_km: float  # homes/hotspots/stations are placed within this radius of the center
    timezone: str
    area_file: Path  # operating-area polygon (WKT), also the default for cleaning
    country_file: Path  # coarse country polygon
    mean_temp_c: float  # daily mean ambient temperature in the simulated season
    temp_amplitude_c: float  # half the day-night swing


REGIONS = {
    "delhi_ncr": Region(
        name="Delhi NCR",
        center_lat=28.6139,
        center_lon=77.2090,
        radius_km=16.0,
        timezone="Asia/Kolkata",
        area_file=CONF_DIR / "areas" / "delhi_ncr.wkt",
        country_file=CONF_DIR / "areas" / "india_coarse.wkt",
        mean_temp_c=27.0,
        temp_amplitude_c=7.0,
    ),
}


def get_region(name: str) -> Region:
    try:
        return REGIONS[name]
    except KeyError:
        raise ValueError(f"unknown generator.region {name!r}; known: {', '.join(REGIONS)}") from None


def read_area_wkt(path: str | Path) -> str:
    """Operating area as WKT from a .wkt file or a GeoJSON (Polygon/MultiPolygon/Feature[Collection])."""
    path = Path(path)
    if not path.is_absolute():
        path = CONF_DIR.parent / path
    text = path.read_text().strip()
    if path.suffix.lower() in (".geojson", ".json"):
        import json

        from shapely.geometry import shape
        from shapely.ops import unary_union

        obj = json.loads(text)
        if obj.get("type") == "FeatureCollection":
            geoms = [shape(f["geometry"]) for f in obj["features"]]
        elif obj.get("type") == "Feature":
            geoms = [shape(obj["geometry"])]
        else:
            geoms = [shape(obj)]
        return unary_union(geoms).wkt
    return text
