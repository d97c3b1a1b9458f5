"""Job plumbing: the SparkSession builder, Delta table IO, the job command line and cluster entry, the run lease, the stage graph, date-range runs and the canonical input schemas."""
