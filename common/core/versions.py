"""The JVM artefacts the SparkSession needs, in one place.

`bin/fetch-jars` downloads exactly these (a test checks the two lists agree); the deploy
tooling passes the Sedona coordinates to EMR/Glue, which already ship Delta 3.3.2.
`DELTA_LOG_STORE_COORDINATES` is cluster-only (Delta's DynamoDB LogStore for S3, docs/DEPLOY.md):
EMR ships it in /usr/share/aws/delta/lib, Glue gets it with --extra-jars from `make package`
(`bin/fetch-jars --cluster` downloads it); local runs on a file system never need it.
`S3A_TEST_COORDINATES` are test-only: the test SparkSession reads `s3a://` from a local S3 server
with them (tests/test_s3_inputs.py; `bin/fetch-jars --test`, run by `make test`). Jobs never load
them: EMR and Glue ship their own S3 file system.
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
DELTA_LOG_STORE_COORDINATES = (f"io.delta:delta-storage-s3-dynamodb:{DELTA_VERSION}",)
DELTA_LOG_STORE_CLASS = "io.delta.storage.S3DynamoDBLogStore"
# hadoop-aws must match the Hadoop PySpark 3.5 bundles (3.3.4), the SDK bundle the one it was built against.
HADOOP_AWS_VERSION = "3.3.4"
AWS_SDK_BUNDLE_VERSION = "1.12.262"
S3A_TEST_COORDINATES = (
    f"org.apache.hadoop:hadoop-aws:{HADOOP_AWS_VERSION}",
    f"com.amazonaws:aws-java-sdk-bundle:{AWS_SDK_BUNDLE_VERSION}",
)


def jar_file_name(coordinate: str) -> str:
    """'g:a:v' -> 'a-v.jar' (Maven's file naming).

    Parameters
    ----------
    coordinate : str
        Maven coordinate ``group:artifact:version``.

    Returns
    -------
    str
        The jar's file name.
    """
    _, artifact, version = coordinate.split(":")
    return f"{artifact}-{version}.jar"
