variable "log_group_prefix" {
  description = "Prefix of every log group name, e.g. /evfa/; must match the prefix the KMS key policy allows."
  type        = string

  validation {
    condition     = startswith(var.log_group_prefix, "/") && endswith(var.log_group_prefix, "/")
    error_message = "log_group_prefix must start and end with '/'."
  }
}

variable "log_groups" {
  description = "Map of logical name -> log group name suffix (appended to log_group_prefix)."
  type        = map(string)
  default = {
    emr_serverless = "emr-serverless"
    glue           = "glue"
    emr_cluster    = "emr-cluster"
  }
}

variable "retention_days" {
  description = "Days CloudWatch keeps log events; one of the values CloudWatch accepts, at least a year for audits."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.retention_days)
    error_message = "retention_days must be a CloudWatch retention value of at least 365 (365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "kms_key_arn" {
  description = "KMS key ARN that encrypts the log groups (its policy must allow logs.<region>.amazonaws.com)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "tags" {
  description = "Tags applied to every log group."
  type        = map(string)
  default     = {}
}
