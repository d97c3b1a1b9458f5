output "lakehouse_bucket" {
  description = "Name of the lakehouse bucket (Delta tables)."
  value       = aws_s3_bucket.lakehouse.id
}

output "lakehouse_bucket_arn" {
  description = "ARN of the lakehouse bucket."
  value       = aws_s3_bucket.lakehouse.arn
}

output "artifacts_bucket" {
  description = "Name of the artifacts bucket (code, environment archive, jars, MLflow artifacts)."
  value       = aws_s3_bucket.artifacts.id
}

output "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket."
  value       = aws_s3_bucket.artifacts.arn
}

output "logs_bucket" {
  description = "Name of the logs bucket (access logs, Spark event logs, driver/executor logs)."
  value       = aws_s3_bucket.logs.id
}

output "logs_bucket_arn" {
  description = "ARN of the logs bucket."
  value       = aws_s3_bucket.logs.arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key encrypting the lakehouse, artifacts and log groups."
  value       = aws_kms_key.this.arn
}

output "analyst_read_policy_arn" {
  description = "ARN of the managed policy for analysts: lakehouse/ tables readable, restricted/ denied."
  value       = aws_iam_policy.analyst_read.arn
}
