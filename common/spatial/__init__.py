"""Spatial helpers shared by the pipeline: haversine distance (`geo`), exact haversine DBSCAN on one node and on Spark (`dbscan`), coarsening of personal locations (`privacy`)."""
