variable "name_prefix" {
  description = "Prefix of the cluster, role and security configuration names."
  type        = string
}

variable "release_label" {
  description = "EMR release of the cluster (7.x: Spark 3.5, Delta 3.x)."
  type        = string

  validation {
    condition     = can(regex("^emr-7\\.[0-9]+\\.[0-9]+$", var.release_label))
    error_message = "release_label must be an emr-7.x release, e.g. emr-7.13.0."
  }
}

variable "subnet_id" {
  description = "Private subnet of the cluster (tagged for-use-with-amazon-emr-managed-policies = true)."
  type        = string

  validation {
    condition     = startswith(var.subnet_id, "subnet-")
    error_message = "subnet_id must be a subnet id (subnet-...)."
  }
}

variable "master_security_group_id" {
  description = "EMR-managed security group of the primary node."
  type        = string

  validation {
    condition     = startswith(var.master_security_group_id, "sg-")
    error_message = "master_security_group_id must be a security group id (sg-...)."
  }
}

variable "core_security_group_id" {
  description = "EMR-managed security group of the core nodes."
  type        = string

  validation {
    condition     = startswith(var.core_security_group_id, "sg-")
    error_message = "core_security_group_id must be a security group id (sg-...)."
  }
}

variable "service_access_security_group_id" {
  description = "EMR service-access security group (required for clusters in private subnets)."
  type        = string

  validation {
    condition     = startswith(var.service_access_security_group_id, "sg-")
    error_message = "service_access_security_group_id must be a security group id (sg-...)."
  }
}

variable "master_instance_type" {
  description = "Instance type of the primary node."
  type        = string
  default     = "m6i.xlarge"
}

variable "core_instance_type" {
  description = "Instance type of the core nodes."
  type        = string
  default     = "m6i.2xlarge"
}

variable "core_instance_count" {
  description = "Number of core nodes."
  type        = number
  default     = 2

  validation {
    condition     = var.core_instance_count >= 1
    error_message = "core_instance_count must be at least 1."
  }
}

variable "core_ebs_size_gb" {
  description = "EBS volume size per core node (shuffle spill)."
  type        = number
  default     = 128

  validation {
    condition     = var.core_ebs_size_gb >= 32
    error_message = "core_ebs_size_gb must be at least 32."
  }
}

variable "idle_timeout_seconds" {
  description = "Seconds without steps after which the cluster terminates itself."
  type        = number
  default     = 3600

  validation {
    condition     = var.idle_timeout_seconds >= 60 && var.idle_timeout_seconds <= 604800
    error_message = "idle_timeout_seconds must be between 60 and 604800."
  }
}

variable "logs_bucket" {
  description = "Logs bucket for the cluster's log_uri."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for at-rest encryption and log encryption."
  type        = string
}

variable "data_access_policy_arn" {
  description = "Managed policy with the jobs' data access (from the execution_role module)."
  type        = string
}

variable "tags" {
  description = "Tags applied to the cluster and roles."
  type        = map(string)
  default     = {}
}
