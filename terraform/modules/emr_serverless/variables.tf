variable "name_prefix" {
  description = "Prefix of the application name."
  type        = string
}

variable "release_label" {
  description = "EMR release; 7.x runs Spark 3.5 and ships Delta 3.x (the project pins Delta 3.3.2)."
  type        = string
  default     = "emr-7.13.0"

  validation {
    condition     = can(regex("^emr-7\\.[0-9]+\\.[0-9]+$", var.release_label))
    error_message = "release_label must be an emr-7.x release (Spark 3.5), e.g. emr-7.13.0."
  }
}

variable "max_cpu" {
  description = "Upper bound of vCPUs the application may use across all running jobs, e.g. \"64 vCPU\"."
  type        = string
  default     = "64 vCPU"

  validation {
    condition     = can(regex("^[0-9]+ vCPU$", var.max_cpu))
    error_message = "max_cpu must look like \"64 vCPU\"."
  }
}

variable "max_memory" {
  description = "Upper bound of memory across all running jobs, e.g. \"256 GB\"."
  type        = string
  default     = "256 GB"

  validation {
    condition     = can(regex("^[0-9]+ GB$", var.max_memory))
    error_message = "max_memory must look like \"256 GB\"."
  }
}

variable "max_disk" {
  description = "Upper bound of disk across all running jobs, e.g. \"1000 GB\"."
  type        = string
  default     = "1000 GB"

  validation {
    condition     = can(regex("^[0-9]+ GB$", var.max_disk))
    error_message = "max_disk must look like \"1000 GB\"."
  }
}

variable "idle_timeout_minutes" {
  description = "Minutes without jobs after which the application stops (no cost while stopped)."
  type        = number
  default     = 15

  validation {
    condition     = var.idle_timeout_minutes >= 1 && var.idle_timeout_minutes <= 10080
    error_message = "idle_timeout_minutes must be between 1 and 10080."
  }
}

variable "subnet_ids" {
  description = "Private subnets for the application (empty: no VPC; jobs then reach S3 and the MLflow server over the public endpoints)."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups for the application when subnet_ids is set."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.security_group_ids : startswith(s, "sg-")])
    error_message = "security_group_ids must be security group ids (sg-...)."
  }
}

variable "tags" {
  description = "Tags applied to the application."
  type        = map(string)
  default     = {}
}
