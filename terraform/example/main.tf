# Example root: everything ev-fleet-analytics needs in one AWS account and region.
# `terraform output -json > ../../dist/terraform-outputs.json` feeds `make submit-emr` /
# `make submit-glue` (see docs/DEPLOY.md).

locals {
  tags = merge(var.tags, {
    project     = "ev-fleet-analytics"
    environment = var.environment
  })
  log_group_prefix = "/${var.name_prefix}/"
}

module "storage" {
  source = "../modules/storage"

  name_prefix             = var.name_prefix
  log_group_prefix        = local.log_group_prefix
  log_expiration_days     = var.log_expiration_days
  noncurrent_version_days = var.noncurrent_version_days
  force_destroy           = var.force_destroy
  tags                    = local.tags
}

module "log_groups" {
  source = "../modules/log_groups"

  log_group_prefix = local.log_group_prefix
  retention_days   = var.log_retention_days
  kms_key_arn      = module.storage.kms_key_arn
  tags             = local.tags
}

module "delta_log_store" {
  source = "../modules/delta_log_store"

  name_prefix = var.name_prefix
  kms_key_arn = module.storage.kms_key_arn
  tags        = local.tags
}

module "glue_catalog" {
  source = "../modules/glue_catalog"

  database_prefix = var.glue_database_prefix
  tags            = local.tags
}

module "mlflow_tracking" {
  source = "../modules/mlflow_tracking"
  count  = var.enable_mlflow_tracking_server ? 1 : 0

  name_prefix          = var.name_prefix
  artifacts_bucket     = module.storage.artifacts_bucket
  artifacts_bucket_arn = module.storage.artifacts_bucket_arn
  kms_key_arn          = module.storage.kms_key_arn
  mlflow_version       = var.mlflow_server_version
  size                 = var.mlflow_server_size
  tags                 = local.tags
}

module "execution_role" {
  source = "../modules/execution_role"

  name_prefix          = var.name_prefix
  region               = var.region
  glue_database_names  = module.glue_catalog.database_names
  lakehouse_bucket_arn = module.storage.lakehouse_bucket_arn
  artifacts_bucket_arn = module.storage.artifacts_bucket_arn
  logs_bucket_arn      = module.storage.logs_bucket_arn
  kms_key_arn          = module.storage.kms_key_arn
  delta_log_table_arn  = module.delta_log_store.table_arn
  log_group_arns       = values(module.log_groups.arns)
  mlflow_server_arns   = [for m in module.mlflow_tracking : m.arn]
  tags                 = local.tags
}

module "emr_serverless" {
  source = "../modules/emr_serverless"

  name_prefix          = var.name_prefix
  release_label        = var.emr_release_label
  max_cpu              = var.emr_max_cpu
  max_memory           = var.emr_max_memory
  idle_timeout_minutes = var.emr_idle_timeout_minutes
  subnet_ids           = var.emr_subnet_ids
  security_group_ids   = var.emr_security_group_ids
  tags                 = local.tags
}

module "glue_jobs" {
  source = "../modules/glue_jobs"
  count  = var.enable_glue_jobs ? 1 : 0

  name_prefix        = var.name_prefix
  job_names          = var.job_names
  glue_version       = var.glue_version
  worker_type        = var.glue_worker_type
  number_of_workers  = var.glue_number_of_workers
  execution_role_arn = module.execution_role.role_arn
  artifacts_bucket   = module.storage.artifacts_bucket
  logs_bucket        = module.storage.logs_bucket
  log_group_name     = module.log_groups.names["glue"]
  kms_key_arn        = module.storage.kms_key_arn
  tags               = local.tags
}

module "emr_cluster" {
  source = "../modules/emr_cluster"
  count  = var.enable_emr_cluster ? 1 : 0

  name_prefix                      = var.name_prefix
  release_label                    = var.emr_release_label
  subnet_id                        = var.emr_cluster_subnet_id
  master_security_group_id         = var.emr_cluster_master_security_group_id
  core_security_group_id           = var.emr_cluster_core_security_group_id
  service_access_security_group_id = var.emr_cluster_service_access_security_group_id
  core_instance_count              = var.emr_cluster_core_instance_count
  logs_bucket                      = module.storage.logs_bucket
  kms_key_arn                      = module.storage.kms_key_arn
  data_access_policy_arn           = module.execution_role.data_access_policy_arn
  tags                             = local.tags
}
