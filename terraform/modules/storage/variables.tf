variable "name_prefix" {
  description = "Prefix of every bucket name and the KMS alias; account id and region are appended to bucket names."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 lowercase letters, digits or hyphens (S3 bucket naming rules)."
  }
}

variable "log_group_prefix" {
  description = "Name prefix of the CloudWatch log groups the KMS key may encrypt (e.g. /evfa/)."
  type        = string

  validation {
    condition     = startswith(var.log_group_prefix, "/")
    error_message = "log_group_prefix must start with '/'."
  }
}

variable "log_expiration_days" {
  description = "Days after which objects in the logs bucket expire."
  type        = number
  default     = 90

  validation {
    condition     = var.log_expiration_days >= 30 && var.log_expiration_days <= 3650
    error_message = "log_expiration_days must be between 30 and 3650 (STANDARD_IA objects are billed for at least 30 days)."
  }
}

variable "log_transition_ia_days" {
  description = "Days after which log objects move to STANDARD_IA; must be smaller than log_expiration_days."
  type        = number
  default     = 30

  validation {
    condition     = var.log_transition_ia_days >= 30
    error_message = "S3 requires at least 30 days before a transition to STANDARD_IA."
  }
}

variable "noncurrent_version_days" {
  description = "Days a noncurrent object version is kept in the lakehouse and artifacts buckets (undo window for VACUUM/overwrites)."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "noncurrent_version_days must be at least 1."
  }
}

variable "kms_deletion_window_days" {
  description = "Waiting period before a scheduled KMS key deletion takes effect."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete non-empty buckets (only for throw-away environments)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "analyst_prefix" {
  description = "Lakehouse bucket prefix analysts may read (storage.root in conf/emr.yaml and conf/glue.yaml)."
  type        = string
  default     = "lakehouse/"
  validation {
    condition     = endswith(var.analyst_prefix, "/") && !startswith(var.analyst_prefix, "/")
    error_message = "analyst_prefix is a bucket prefix ending in '/', e.g. 'lakehouse/'."
  }
}

variable "restricted_prefix" {
  description = "Lakehouse bucket prefix of personal data (storage.restricted_root): denied to analysts."
  type        = string
  default     = "restricted/"
  validation {
    condition     = endswith(var.restricted_prefix, "/") && !startswith(var.restricted_prefix, "/")
    error_message = "restricted_prefix is a bucket prefix ending in '/', e.g. 'restricted/'."
  }
}
