output "database_names" {
  description = "Names of the Glue databases, one per layer."
  value       = [for d in aws_glue_catalog_database.layer : d.name]
}
