variable "region" {
  description = "AWS region to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (buckets get the account id and region appended)."
  type        = string
  default     = "evfa"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 lowercase letters, digits or hyphens."
  }
}

variable "environment" {
  description = "Deployment stage, used as a tag."
  type        = string
  default     = "dev"

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

variable "force_destroy" {
  description = "Allow destroying non-empty buckets (throw-away environments only)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "CloudWatch log retention in days (CloudWatch values of at least 365)."
  type        = number
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "log_retention_days must be at least 365."
  }
}

variable "log_expiration_days" {
  description = "Days after which objects in the logs bucket expire."
  type        = number
  default     = 90

  validation {
    condition     = var.log_expiration_days >= 30
    error_message = "log_expiration_days must be at least 30."
  }
}

variable "noncurrent_version_days" {
  description = "Days noncurrent object versions are kept in the lakehouse and artifacts buckets."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "noncurrent_version_days must be at least 1."
  }
}

# ---- EMR Serverless -----------------------------------------------------------------------
variable "emr_release_label" {
  description = "EMR 7.x release of the Serverless application and the optional cluster (Spark 3.5, Delta 3.3.2)."
  type        = string
  default     = "emr-7.13.0"

  validation {
    condition     = can(regex("^emr-7\\.[0-9]+\\.[0-9]+$", var.emr_release_label))
    error_message = "emr_release_label must be an emr-7.x release."
  }
}

variable "emr_max_cpu" {
  description = "Maximum vCPUs of the EMR Serverless application, e.g. \"64 vCPU\"."
  type        = string
  default     = "64 vCPU"

  validation {
    condition     = can(regex("^[0-9]+ vCPU$", var.emr_max_cpu))
    error_message = "emr_max_cpu must look like \"64 vCPU\"."
  }
}

variable "emr_max_memory" {
  description = "Maximum memory of the EMR Serverless application, e.g. \"256 GB\"."
  type        = string
  default     = "256 GB"

  validation {
    condition     = can(regex("^[0-9]+ GB$", var.emr_max_memory))
    error_message = "emr_max_memory must look like \"256 GB\"."
  }
}

variable "emr_idle_timeout_minutes" {
  description = "Minutes of idleness after which the EMR Serverless application stops."
  type        = number
  default     = 15

  validation {
    condition     = var.emr_idle_timeout_minutes >= 1
    error_message = "emr_idle_timeout_minutes must be at least 1."
  }
}

variable "emr_subnet_ids" {
  description = "Private subnets for EMR Serverless (empty: no VPC attachment). A VPC needs S3 and CloudWatch endpoints or NAT, and a route to the MLflow server."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.emr_subnet_ids : startswith(s, "subnet-")])
    error_message = "emr_subnet_ids must be subnet ids (subnet-...)."
  }
}

variable "emr_security_group_ids" {
  description = "Security groups for EMR Serverless when emr_subnet_ids is set."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.emr_security_group_ids : startswith(s, "sg-")])
    error_message = "emr_security_group_ids must be security group ids (sg-...)."
  }
}

# ---- Glue ---------------------------------------------------------------------------------
variable "enable_glue_jobs" {
  description = "Create one Glue 5.x job per entry point in job_names."
  type        = bool
  default     = true
}

variable "job_names" {
  description = "Entry points (jobs/<name>.py). `make package` writes the current list to dist/entrypoints.auto.tfvars.json; pass it with -var-file."
  type        = list(string)
  default     = ["pipeline"]

  validation {
    condition     = length(var.job_names) > 0 && alltrue([for j in var.job_names : can(regex("^[a-z][a-z0-9_]*$", j))])
    error_message = "job_names must be a non-empty list of Python module names."
  }
}

variable "glue_version" {
  description = "Glue version of the jobs (5.x: Spark 3.5, Python 3.11)."
  type        = string
  default     = "5.1"

  validation {
    condition     = can(regex("^5\\.[0-9]+$", var.glue_version))
    error_message = "glue_version must be 5.x."
  }
}

variable "glue_worker_type" {
  description = "Glue worker type."
  type        = string
  default     = "G.1X"

  validation {
    condition     = can(regex("^[GR]\\.[1248]X$", var.glue_worker_type))
    error_message = "glue_worker_type must be one of G.1X, G.2X, G.4X, G.8X, R.1X, R.2X, R.4X, R.8X."
  }
}

variable "glue_number_of_workers" {
  description = "Glue workers per job run."
  type        = number
  default     = 10

  validation {
    condition     = var.glue_number_of_workers >= 2
    error_message = "glue_number_of_workers must be at least 2."
  }
}

# ---- optional EMR on EC2 cluster ----------------------------------------------------------
variable "enable_emr_cluster" {
  description = "Also create a long-running EMR on EC2 cluster (auto-terminates when idle)."
  type        = bool
  default     = false
}

variable "emr_cluster_subnet_id" {
  description = "Private subnet of the EMR on EC2 cluster (required when enable_emr_cluster)."
  type        = string
  default     = null
}

variable "emr_cluster_master_security_group_id" {
  description = "EMR-managed security group of the primary node (required when enable_emr_cluster)."
  type        = string
  default     = null
}

variable "emr_cluster_core_security_group_id" {
  description = "EMR-managed security group of the core nodes (required when enable_emr_cluster)."
  type        = string
  default     = null
}

variable "emr_cluster_service_access_security_group_id" {
  description = "EMR service-access security group (required when enable_emr_cluster)."
  type        = string
  default     = null
}

variable "emr_cluster_core_instance_count" {
  description = "Core nodes of the EMR on EC2 cluster."
  type        = number
  default     = 2

  validation {
    condition     = var.emr_cluster_core_instance_count >= 1
    error_message = "emr_cluster_core_instance_count must be at least 1."
  }
}

variable "glue_database_prefix" {
  description = "Prefix of the Glue databases of the tables by name; set catalog.database_prefix in the jobs' conf to the same."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[a-z0-9_]{0,30}$", var.glue_database_prefix))
    error_message = "glue_database_prefix may hold lower-case letters, digits and underscores (at most 30)."
  }
}

variable "enable_mlflow_tracking_server" {
  description = "Create a SageMaker managed MLflow tracking server for the jobs (false: bring your own and set MLFLOW_TRACKING_URI)."
  type        = bool
  default     = true
}

variable "mlflow_server_version" {
  description = "MLflow version of the SageMaker tracking server (3.x: the jobs log MLflow 3 logged models)."
  type        = string
  default     = "3.0"
}

variable "mlflow_server_size" {
  description = "Size of the SageMaker tracking server: Small, Medium or Large."
  type        = string
  default     = "Small"
}
