variable "name_prefix" {
  description = "Prefix of the Glue job and security configuration names."
  type        = string
}

variable "job_names" {
  description = "Entry points to create a Glue job for (jobs/<name>.py); `make package` writes the current list to dist/entrypoints.auto.tfvars.json."
  type        = list(string)

  validation {
    condition     = alltrue([for j in var.job_names : can(regex("^[a-z][a-z0-9_]*$", j))])
    error_message = "job_names must be Python module names (lowercase letters, digits, underscores)."
  }
}

variable "glue_version" {
  description = "Glue version; 5.x runs Spark 3.5 with Python 3.11 (the project pins Delta 3.3.2, shipped by Glue 5.1)."
  type        = string
  default     = "5.1"

  validation {
    condition     = can(regex("^5\\.[0-9]+$", var.glue_version))
    error_message = "glue_version must be a 5.x version, e.g. 5.1."
  }
}

variable "worker_type" {
  description = "Glue worker type."
  type        = string
  default     = "G.1X"

  validation {
    condition     = contains(["G.1X", "G.2X", "G.4X", "G.8X", "R.1X", "R.2X", "R.4X", "R.8X"], var.worker_type)
    error_message = "worker_type must be a Glue Spark worker type (G.1X, G.2X, G.4X, G.8X, R.1X, R.2X, R.4X, R.8X)."
  }
}

variable "number_of_workers" {
  description = "Glue workers per job run (one is the driver)."
  type        = number
  default     = 10

  validation {
    condition     = var.number_of_workers >= 2
    error_message = "number_of_workers must be at least 2."
  }
}

variable "timeout_minutes" {
  description = "Job run timeout in minutes."
  type        = number
  default     = 240

  validation {
    condition     = var.timeout_minutes >= 1 && var.timeout_minutes <= 10080
    error_message = "timeout_minutes must be between 1 and 10080."
  }
}

variable "execution_role_arn" {
  description = "IAM role the jobs run as."
  type        = string
}

variable "artifacts_bucket" {
  description = "Artifacts bucket holding the entry scripts and Glue's temp directory."
  type        = string
}

variable "entrypoint_prefix" {
  description = "Key prefix of the entry scripts in the artifacts bucket."
  type        = string
  default     = "entrypoints/"

  validation {
    condition     = endswith(var.entrypoint_prefix, "/") && !startswith(var.entrypoint_prefix, "/")
    error_message = "entrypoint_prefix must end with '/' and not start with '/'."
  }
}

variable "logs_bucket" {
  description = "Logs bucket for Spark event logs."
  type        = string
}

variable "log_group_name" {
  description = "CloudWatch log group for continuous logging."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for the Glue security configuration (S3, CloudWatch, bookmarks)."
  type        = string
}

variable "default_arguments" {
  description = "Extra default job arguments merged over the module's defaults."
  type        = map(string)
  default     = {}
}

variable "tags" {
  description = "Tags applied to the jobs."
  type        = map(string)
  default     = {}
}
