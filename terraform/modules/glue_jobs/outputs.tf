output "job_names" {
  description = "Map of entry point -> Glue job name."
  value       = { for k, j in aws_glue_job.this : k => j.name }
}

output "security_configuration" {
  description = "Name of the Glue security configuration."
  value       = aws_glue_security_configuration.this.name
}
