"""Demo regions for the generator and default operating areas for cleaning.

The operating-area polygon used by cleaning comes from conf (`clean.area_file`, a WKT or GeoJSON
file); when it is not set and the inputs are the generator's own files, cleaning uses the
generator region's `area_file`. The region tells the generator where to place people, places and
stations, which local clock the fleet lives by, its weather and which vehicle models it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.core.config import CONF_DIR


@dataclass(frozen=True)
class Region:
    """A demo region of the generator.

    Attributes
    ----------
    name : str
        Display name.
    center_lat, center_lon : float
        Center of the region (WGS84 degrees).
    radius_km : float
        Homes, hotspots and stations are placed within this radius of the center (km).
    timezone : str
        IANA zone of the fleet's local clock (DST-aware).
    area_file : pathlib.Path
        Operating-area polygon (WKT), the cleaning default for generated inputs.
    mean_temp_c : float
        Daily mean ambient temperature in the simulated season (degC).
    temp_amplitude_c : float
        Half the day-night swing (degC).
    city, state : str
        Station metadata.
    fleet : str
        Vehicle model set (common.synthetic.generator.FLEETS).
    networks : tuple of str
        Charging network operators named in station metadata.
    """

    name: str
    center_lat: float
    center_lon: float
    radius_km: float
    timezone: str
    area_file: Path
    mean_temp_c: float
    temp_amplitude_c: float
    city: str
    state: str
    fleet: str
    networks: tuple[str, ...]


REGIONS = {
    "delhi_ncr": Region(
        name="Delhi NCR",
        center_lat=28.6139,
        center_lon=77.2090,
        radius_km=16.0,
        timezone="Asia/Kolkata",
        area_file=CONF_DIR / "areas" / "delhi_ncr.wkt",
        mean_temp_c=27.0,
        temp_amplitude_c=7.0,
        city="Delhi",
        state="DL",
        fleet="india",
        networks=("Tata Power EZ Charge", "Statiq", "ChargeZone", "EESL", "Jio-bp pulse"),
    ),
    # East Africa: UTC+3 all year, boda-boda e-motorcycles, tuk-tuks and taxis.
    "nairobi": Region(
        name="Nairobi",
        center_lat=-1.2921,
        center_lon=36.8219,
        radius_km=13.0,
        timezone="Africa/Nairobi",
        area_file=CONF_DIR / "areas" / "nairobi.wkt",
        mean_temp_c=21.0,
        temp_amplitude_c=6.0,
        city="Nairobi",
        state="Nairobi County",
        fleet="east_africa",
        networks=("EVChaja", "Roam Hub", "KPLC e-Mobility", "Kiri EV"),
    ),
    # A DST zone: a period over the last Sunday of March crosses GMT -> BST.
    "london": Region(
        name="Greater London",
        center_lat=51.5074,
        center_lon=-0.1278,
        radius_km=14.0,
        timezone="Europe/London",
        area_file=CONF_DIR / "areas" / "greater_london.wkt",
        mean_temp_c=9.0,
        temp_amplitude_c=4.0,
        city="London",
        state="Greater London",
        fleet="uk",
        networks=("Pod Point", "bp pulse", "Shell Recharge", "Source London", "Ionity"),
    ),
}


def get_region(name: str) -> Region:
    """The demo region `name` (`generator.region`).

    Parameters
    ----------
    name : str
        A key of REGIONS, e.g. ``delhi_ncr``.

    Returns
    -------
    Region

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    """
    try:
        return REGIONS[name]
    except KeyError:
        raise ValueError(f"unknown generator.region {name!r}; known: {', '.join(REGIONS)}") from None


def read_area_wkt(path: str | Path) -> str:
    """Operating area as WKT from a .wkt file or a GeoJSON (Polygon/MultiPolygon/Feature[Collection]).

    Parameters
    ----------
    path : str or pathlib.Path
        The file; a relative path is taken from the project root.

    Returns
    -------
    str
        WKT with lon lat in WGS84 degrees: a .wkt file's text as it is, a GeoJSON's geometries unioned.
    """
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
