output "arn" {
  description = "ARN of the tracking server: the jobs' MLFLOW_TRACKING_URI (with the sagemaker-mlflow plugin)."
  value       = aws_sagemaker_mlflow_tracking_server.this.arn
}

output "tracking_server_url" {
  description = "URL of the MLflow UI (opened through a presigned URL: aws sagemaker create-presigned-mlflow-tracking-server-url)."
  value       = aws_sagemaker_mlflow_tracking_server.this.tracking_server_url
}
