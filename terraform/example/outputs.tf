# Read by the submit tooling (deploy/submit.py: REQUIRED_TF_OUTPUTS); a test checks
# that every output the tooling consumes is declared here.

output "region" {
  description = "AWS region of the deployment."
  value       = var.region
}

output "lakehouse_bucket" {
  description = "Lakehouse bucket (EVFA_LAKEHOUSE_BUCKET for conf/emr.yaml and conf/glue.yaml)."
  value       = module.storage.lakehouse_bucket
}

output "artifacts_bucket" {
  description = "Artifacts bucket (EVFA_ARTIFACTS_BUCKET; code, environment archive, jars, MLflow artifacts)."
  value       = module.storage.artifacts_bucket
}

output "logs_bucket" {
  description = "Logs bucket (EMR Serverless monitoring logs, Spark event logs)."
  value       = module.storage.logs_bucket
}

output "delta_log_table_name" {
  description = "DynamoDB table of Delta's S3DynamoDBLogStore (EVFA_DELTA_LOG_TABLE for conf/emr.yaml and conf/glue.yaml)."
  value       = module.delta_log_store.table_name
}

output "kms_key_arn" {
  description = "Project KMS key (EMR Serverless log encryption)."
  value       = module.storage.kms_key_arn
}

output "execution_role_arn" {
  description = "Job execution role (start-job-run --execution-role-arn)."
  value       = module.execution_role.role_arn
}

output "emr_serverless_application_id" {
  description = "EMR Serverless application id (start-job-run --application-id)."
  value       = module.emr_serverless.application_id
}

output "emr_release_label" {
  description = "EMR release of the application (and of the optional cluster)."
  value       = module.emr_serverless.release_label
}

output "emr_serverless_log_group" {
  description = "CloudWatch log group for EMR Serverless job runs."
  value       = module.log_groups.names["emr_serverless"]
}

output "glue_log_group" {
  description = "CloudWatch log group for Glue continuous logging."
  value       = module.log_groups.names["glue"]
}

output "glue_version" {
  description = "Glue version of the jobs."
  value       = var.glue_version
}

output "glue_job_names" {
  description = "Map of entry point -> Glue job name (empty when enable_glue_jobs is false)."
  value       = try(module.glue_jobs[0].job_names, {})
}

output "emr_cluster_id" {
  description = "EMR on EC2 cluster id, or null when enable_emr_cluster is false."
  value       = try(module.emr_cluster[0].cluster_id, null)
}

output "mlflow_tracking_uri" {
  description = "MLFLOW_TRACKING_URI of the jobs: the SageMaker MLflow tracking server's ARN, or null when enable_mlflow_tracking_server is false (then set MLFLOW_TRACKING_URI to your own server)."
  value       = try(module.mlflow_tracking[0].arn, null)
}

output "mlflow_ui_url" {
  description = "MLflow UI of the SageMaker tracking server (open it through `aws sagemaker create-presigned-mlflow-tracking-server-url`), or null."
  value       = try(module.mlflow_tracking[0].tracking_server_url, null)
}
