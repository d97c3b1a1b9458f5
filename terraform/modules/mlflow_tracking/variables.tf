variable "name_prefix" {
  description = "Prefix of the server and role names."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9-]{1,40}$", var.name_prefix))
    error_message = "name_prefix must be 1-40 letters, digits or hyphens (a SageMaker tracking server name)."
  }
}

variable "artifacts_bucket" {
  description = "Name of the artifacts bucket holding the MLflow artifact store."
  type        = string
}

variable "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.artifacts_bucket_arn))
    error_message = "artifacts_bucket_arn must be an S3 bucket ARN without wildcards."
  }
}

variable "artifact_prefix" {
  description = "Key prefix of the artifact store; must equal the jobs' mlflow.artifact_location (s3://<artifacts bucket>/mlflow)."
  type        = string
  default     = "mlflow/"

  validation {
    condition     = length(var.artifact_prefix) > 1 && endswith(var.artifact_prefix, "/") && !strcontains(var.artifact_prefix, "*")
    error_message = "artifact_prefix must be non-empty, end with '/' and contain no '*'."
  }
}

variable "kms_key_arn" {
  description = "ARN of the project KMS key (the artifacts bucket's encryption key)."
  type        = string
}

variable "mlflow_version" {
  description = "MLflow version of the server. The jobs' client is MLflow 3 (logged models), so the server must be 3.x."
  type        = string
  default     = "3.0"

  validation {
    condition     = can(regex("^3(\\.[0-9]+)+$", var.mlflow_version))
    error_message = "mlflow_version must be a 3.x version: the jobs log MLflow 3 logged models."
  }
}

variable "size" {
  description = "Tracking server size (Small: up to ~25 users)."
  type        = string
  default     = "Small"

  validation {
    condition     = contains(["Small", "Medium", "Large"], var.size)
    error_message = "size must be Small, Medium or Large."
  }
}

variable "weekly_maintenance_window_start" {
  description = "Weekly maintenance window start (Ddd:HH:MM, UTC)."
  type        = string
  default     = "Sun:03:00"
}

variable "tags" {
  description = "Tags on the server and its role."
  type        = map(string)
  default     = {}
}
