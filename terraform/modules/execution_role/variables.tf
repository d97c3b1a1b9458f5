variable "name_prefix" {
  description = "Prefix of the role and policy names."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,40}$", var.name_prefix))
    error_message = "name_prefix must be 1-40 characters valid in IAM names."
  }
}

variable "trusted_services" {
  description = "Service principals allowed to assume the role."
  type        = list(string)
  default     = ["emr-serverless.amazonaws.com", "glue.amazonaws.com"]

  validation {
    condition     = length(var.trusted_services) > 0 && alltrue([for s in var.trusted_services : contains(["emr-serverless.amazonaws.com", "glue.amazonaws.com"], s)])
    error_message = "trusted_services may only contain emr-serverless.amazonaws.com and glue.amazonaws.com."
  }
}

variable "lakehouse_bucket_arn" {
  description = "ARN of the lakehouse bucket (read/write)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.lakehouse_bucket_arn))
    error_message = "lakehouse_bucket_arn must be an S3 bucket ARN without wildcards."
  }
}

variable "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket (read; write only under artifacts_writable_prefixes)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.artifacts_bucket_arn))
    error_message = "artifacts_bucket_arn must be an S3 bucket ARN without wildcards."
  }
}

variable "logs_bucket_arn" {
  description = "ARN of the logs bucket (write only under logs_writable_prefixes)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.logs_bucket_arn))
    error_message = "logs_bucket_arn must be an S3 bucket ARN without wildcards."
  }
}

variable "artifacts_writable_prefixes" {
  description = "Key prefixes in the artifacts bucket that jobs may write (MLflow artifacts, Glue temp)."
  type        = list(string)
  default     = ["mlflow/", "glue/tmp/"]

  validation {
    condition     = alltrue([for p in var.artifacts_writable_prefixes : length(p) > 1 && endswith(p, "/") && !strcontains(p, "*")])
    error_message = "Each prefix must be non-empty, end with '/' and contain no '*'."
  }
}

variable "logs_writable_prefixes" {
  description = "Key prefixes in the logs bucket that jobs may write (EMR Serverless monitoring, Spark event logs)."
  type        = list(string)
  default     = ["emr-serverless/", "glue/", "emr-cluster/"]

  validation {
    condition     = alltrue([for p in var.logs_writable_prefixes : length(p) > 1 && endswith(p, "/") && !strcontains(p, "*")])
    error_message = "Each prefix must be non-empty, end with '/' and contain no '*'."
  }
}

variable "kms_key_arn" {
  description = "ARN of the project KMS key."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "delta_log_table_arn" {
  description = "ARN of the DynamoDB table of Delta's S3DynamoDBLogStore (get/put/update/query its items)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]+$", var.delta_log_table_arn))
    error_message = "delta_log_table_arn must be a DynamoDB table ARN without wildcards."
  }
}

variable "log_group_arns" {
  description = "ARNs of the CloudWatch log groups the jobs write to (without the trailing :*)."
  type        = list(string)

  validation {
    condition     = length(var.log_group_arns) > 0 && alltrue([for a in var.log_group_arns : can(regex("^arn:aws[a-z-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:[^*]+$", a))])
    error_message = "log_group_arns must be non-empty log group ARNs without wildcards."
  }
}

variable "tags" {
  description = "Tags applied to the role and policy."
  type        = map(string)
  default     = {}
}

variable "glue_database_names" {
  description = "Glue Data Catalog databases whose tables the jobs register (jobs/catalog.py); empty: no Glue catalog access."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for d in var.glue_database_names : can(regex("^[a-z0-9_]+$", d))])
    error_message = "glue_database_names must be Glue database names without wildcards."
  }
}

variable "region" {
  description = "AWS region of the Glue Data Catalog."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "mlflow_server_arns" {
  description = "SageMaker MLflow tracking servers the jobs log to (sagemaker-mlflow:* on these only); empty when the server is not SageMaker's."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.mlflow_server_arns : can(regex("^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:mlflow-tracking-server/[A-Za-z0-9-]+$", a))])
    error_message = "mlflow_server_arns must be SageMaker MLflow tracking server ARNs."
  }
}
