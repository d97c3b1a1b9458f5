output "names" {
  description = "Map of logical name -> log group name."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}

output "arns" {
  description = "Map of logical name -> log group ARN (without the trailing :*)."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.arn }
}
