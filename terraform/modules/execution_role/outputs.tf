output "role_arn" {
  description = "ARN of the job execution role (EMR Serverless --execution-role-arn, Glue job role)."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "Name of the job execution role."
  value       = aws_iam_role.this.name
}

output "data_access_policy_arn" {
  description = "ARN of the managed policy with the jobs' data access (reused by the EMR on EC2 instance role)."
  value       = aws_iam_policy.data_access.arn
}
