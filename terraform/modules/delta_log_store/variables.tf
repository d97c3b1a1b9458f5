variable "name_prefix" {
  description = "Prefix of the table name (<prefix>-delta-log)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{3,200}$", var.name_prefix))
    error_message = "name_prefix must be 3-200 characters valid in DynamoDB table names."
  }
}

variable "kms_key_arn" {
  description = "KMS key ARN that encrypts the table (the project key)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the table (losing it while jobs run breaks the commit protocol of every Delta table on S3)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags applied to the table."
  type        = map(string)
  default     = {}
}
