# The IAM role Spark jobs run as (EMR Serverless job runs, Glue jobs) and the customer-managed
# policy holding its data access. Data access is scoped to exactly the project's three buckets
# (and, inside them, to the prefixes each stage writes), the project KMS key, the Delta log-store
# DynamoDB table and the project's log groups: no "*" resources for data.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "JobServicesAssumeRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = var.trusted_services
    }
    # Confused-deputy protection: only this account's EMR Serverless applications / Glue jobs.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = "${var.name_prefix}-job-execution"
  description          = "Runs ev-fleet-analytics Spark jobs (EMR Serverless, Glue)."
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600 * 12
  tags                 = var.tags
}

data "aws_iam_policy_document" "data_access" {
  statement {
    sid     = "ListProjectBuckets"
    actions = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [
      var.lakehouse_bucket_arn,
      var.artifacts_bucket_arn,
      var.logs_bucket_arn,
    ]
  }

  # Delta tables: jobs read, write and (VACUUM) delete data and log files.
  statement {
    sid = "LakehouseReadWrite"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${var.lakehouse_bucket_arn}/*"]
  }

  # Code, environment archive, jars and entry scripts are read-only for jobs.
  statement {
    sid       = "ArtifactsRead"
    actions   = ["s3:GetObject"]
    resources = ["${var.artifacts_bucket_arn}/*"]
  }

  # MLflow artifacts and Glue's temporary directory are the only places jobs write to.
  statement {
    sid = "ArtifactsWriteMlflowAndGlueTemp"
    actions = [
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [for p in var.artifacts_writable_prefixes : "${var.artifacts_bucket_arn}/${p}*"]
  }

  statement {
    sid       = "LogsBucketWrite"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [for p in var.logs_writable_prefixes : "${var.logs_bucket_arn}/${p}*"]
  }

  # Delta's S3DynamoDBLogStore (conf/emr.yaml, conf/glue.yaml): claim and read commit entries of
  # the project's log-store table only. DescribeTable: the LogStore checks the table at start-up.
  statement {
    sid = "DeltaLogStoreTable"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:Query",
    ]
    resources = [var.delta_log_table_arn]
  }

  statement {
    sid = "ProjectKmsKey"
    actions = [
      "kms:Decrypt",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:DescribeKey",
    ]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "ProjectLogGroupsWrite"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:AssociateKmsKey"]
    resources = flatten([for arn in var.log_group_arns : [arn, "${arn}:*"]])
  }

  # EMR Serverless checks that the configured log group exists before streaming to it.
  statement {
    sid       = "DescribeLogGroupsInAccount"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["arn:${local.partition}:logs:*:${local.account_id}:log-group:*"]
  }

  # MLflow on SageMaker: the sagemaker-mlflow plugin signs each tracking and registry call with the
  # job's credentials; the role may use the project's tracking servers only.
  dynamic "statement" {
    for_each = length(var.mlflow_server_arns) > 0 ? [1] : []
    content {
      sid       = "MlflowTrackingServer"
      actions   = ["sagemaker-mlflow:*"]
      resources = var.mlflow_server_arns
    }
  }

  # Tables by name (jobs/catalog.py): the project's Glue databases and their tables only. The Hive
  # client of EMR and Glue reads the `default` database when it starts and creates it when the
  # account has none (CreateDatabase is granted on that one database only).
  dynamic "statement" {
    for_each = length(var.glue_database_names) > 0 ? [1] : []
    content {
      sid = "GlueCatalogProjectDatabases"
      actions = [
        "glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables", "glue:CreateTable", "glue:UpdateTable",
        "glue:DeleteTable", "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition",
      ]
      resources = concat(
        ["arn:${local.partition}:glue:${var.region}:${local.account_id}:catalog", "arn:${local.partition}:glue:${var.region}:${local.account_id}:database/default"],
        [for d in var.glue_database_names : "arn:${local.partition}:glue:${var.region}:${local.account_id}:database/${d}"],
        [for d in var.glue_database_names : "arn:${local.partition}:glue:${var.region}:${local.account_id}:table/${d}/*"],
      )
    }
  }

  dynamic "statement" {
    for_each = length(var.glue_database_names) > 0 ? [1] : []
    content {
      sid       = "GlueCatalogDefaultDatabase"
      actions   = ["glue:CreateDatabase"]
      resources = ["arn:${local.partition}:glue:${var.region}:${local.account_id}:catalog", "arn:${local.partition}:glue:${var.region}:${local.account_id}:database/default"]
    }
  }

  # Glue job metrics (--enable-metrics). PutMetricData has no resource-level permissions,
  # so it is limited by namespace instead.
  statement {
    sid       = "GlueMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["Glue"]
    }
  }
}

resource "aws_iam_policy" "data_access" {
  name        = "${var.name_prefix}-job-data-access"
  description = "ev-fleet-analytics jobs: project buckets, KMS key and log groups only."
  policy      = data.aws_iam_policy_document.data_access.json
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "data_access" {
  role       = aws_iam_role.this.name
  policy_arn = aws_iam_policy.data_access.arn
}
