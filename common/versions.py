"""The JVM artefacts the SparkSession needs, in one place.

`bin/fetch-jars` downloads exactly these (a test checks the two lists agree); the deploy
tooling passes the Sedona coordinates to EMR/Glue, which already ship Delta 3.3.2.
"""

DELTA_VERSION = "3.3.2"
SEDONA_VERSION = "1.8.1"
GEOTOOLS_WRAPPER_VERSION = "1.8.1-33.1"

DELTA_COORDINATES = (
    f"io.delta:delta-spark_2.12:{DELTA_VERSION}",
    f"io.delta:delta-storage:{DELTA_VERSION}",
)
SEDONA_COORDINATES = (
    f"org.apache.sedona:sedona-spark-shaded-3.5_2.12:{SEDONA_VERSION}",
    # geotools-wrapper carries the CRS database Sedona uses for ST_Transform / spheroid work.
    f"org.datasyslab:geotools-wrapper:{GEOTOOLS_WRAPPER_VERSION}",
)
ALL_COORDINATES = DELTA_COORDINATES + SEDONA_COORDINATES


def jar_file_name(coordinate: str) -> str:
    """'g:a:v' -> 'a-v.jar' (Maven's file naming)."""
    _, artifact, version = coordinate.split(":")
    return f"{artifact}-{version}.jar"
