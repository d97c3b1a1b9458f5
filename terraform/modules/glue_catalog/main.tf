# Tables by name (jobs/catalog.py with catalog.metastore: glue): one Glue Data Catalog database per
# lakehouse layer. The jobs register each Delta table in them as an external table at its S3
# folder; Athena and EMR Studio then query gold.driver_risk by name (docs/DEPLOY.md).

resource "aws_glue_catalog_database" "layer" {
  for_each = toset(var.layers)

  name        = "${var.database_prefix}${each.key}"
  description = "ev-fleet-analytics ${each.key} tables (registered by jobs/catalog.py at their S3 folders)."
  tags        = var.tags
}
