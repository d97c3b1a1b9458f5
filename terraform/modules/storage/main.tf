# Lakehouse, artifacts and logs buckets plus the customer-managed KMS key that encrypts the
# lakehouse, the artifacts and the CloudWatch log groups.
#
# - lakehouse: Delta tables (bronze/silver/gold) and the restricted prefix (residences).
# - artifacts: wheels, environment archive, entry scripts, jars, MLflow artifacts, Glue temp.
# - logs:      S3 server access logs of the two other buckets, EMR/Glue Spark event logs and
#              driver/executor logs. Expires after var.log_expiration_days.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  suffix     = "${local.account_id}-${local.region}"

  bucket_names = {
    lakehouse = "${var.name_prefix}-lakehouse-${local.suffix}"
    artifacts = "${var.name_prefix}-artifacts-${local.suffix}"
    logs      = "${var.name_prefix}-logs-${local.suffix}"
  }
}

# --------------------------------------------------------------------------------------------
# KMS key
# --------------------------------------------------------------------------------------------
data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:Key policy: "*" is the key itself and the only admin principal is this account's root, as AWS's default key policy does.
  #checkov:skip=CKV_AWS_111:Key policy: "*" is the key itself; write actions are limited to the account root and to CloudWatch Logs for the project's log groups (encryption-context condition).
  #checkov:skip=CKV_AWS_356:Key policy: a key policy's Resource can only be "*" (the key it is attached to).
  # The account root administers the key; IAM policies (the execution role's) grant use.
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy "*" means "this key"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts the project's log groups with this key, and only those.
  statement {
    sid = "CloudWatchLogsForProjectLogGroups"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"] # in a key policy "*" means "this key"
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${var.log_group_prefix}*"]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "${var.name_prefix}: lakehouse, artifacts and log groups"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.this.key_id
}

# --------------------------------------------------------------------------------------------
# Buckets
# --------------------------------------------------------------------------------------------
resource "aws_s3_bucket" "lakehouse" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice per deployment (cost, data residency of the restricted prefix); the lakehouse is rebuildable from raw inputs and versioned.
  #checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications exists; jobs are scheduled, not triggered by object events.
  bucket        = local.bucket_names.lakehouse
  force_destroy = var.force_destroy
  tags          = merge(var.tags, { "evfa:data" = "lakehouse" })
}

resource "aws_s3_bucket" "artifacts" {
  #checkov:skip=CKV_AWS_144:Artifacts are rebuilt by `make package` from git; replication would copy build outputs only.
  #checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications exists for build artifacts.
  bucket        = local.bucket_names.artifacts
  force_destroy = var.force_destroy
  tags          = merge(var.tags, { "evfa:data" = "artifacts" })
}

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log target bucket; logging it into itself would loop.
  #checkov:skip=CKV_AWS_144:Logs expire after var.log_expiration_days; replicating short-lived logs is not worth the cost.
  #checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications exists for logs.
  #checkov:skip=CKV_AWS_145:S3 server access log delivery only supports SSE-S3 (AES256) on the target bucket, not SSE-KMS; logs are still encrypted at rest.
  bucket        = local.bucket_names.logs
  force_destroy = var.force_destroy
  tags          = merge(var.tags, { "evfa:data" = "logs" })
}

locals {
  buckets = {
    lakehouse = aws_s3_bucket.lakehouse
    artifacts = aws_s3_bucket.artifacts
    logs      = aws_s3_bucket.logs
  }
  kms_buckets = {
    lakehouse = aws_s3_bucket.lakehouse
    artifacts = aws_s3_bucket.artifacts
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each                = local.buckets
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets
  bucket   = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = local.buckets
  bucket   = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "kms" {
  for_each = local.kms_buckets
  bucket   = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true # fewer KMS requests for the many small Delta log files
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256" # required for S3 server access log delivery
    }
  }
}

resource "aws_s3_bucket_logging" "this" {
  for_each      = local.kms_buckets
  bucket        = each.value.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3-access/${each.key}/"
}

# Lakehouse: Delta never rewrites a data file, so noncurrent versions only come from VACUUM
# and overwrites of _last_checkpoint; keep them long enough to undo an accidental VACUUM.
resource "aws_s3_bucket_lifecycle_configuration" "lakehouse" {
  bucket = aws_s3_bucket.lakehouse.id
  rule {
    id     = "noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    id     = "noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  rule {
    id     = "glue-temp"
    status = "Enabled"
    filter {
      prefix = "glue/tmp/"
    }
    expiration {
      days = 7
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    id     = "expire-logs"
    status = "Enabled"
    filter {}
    transition {
      days          = var.log_transition_ia_days
      storage_class = "STANDARD_IA"
    }
    expiration {
      days = var.log_expiration_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# --------------------------------------------------------------------------------------------
# Bucket policies: TLS only everywhere; the logs bucket also accepts S3 access-log delivery.
# --------------------------------------------------------------------------------------------
data "aws_iam_policy_document" "tls_only" {
  for_each = local.buckets

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      each.value.arn,
      "${each.value.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  dynamic "statement" {
    for_each = each.key == "logs" ? [1] : []
    content {
      sid       = "S3ServerAccessLogDelivery"
      actions   = ["s3:PutObject"]
      resources = ["${each.value.arn}/s3-access/*"]
      principals {
        type        = "Service"
        identifiers = ["logging.s3.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = local.buckets
  bucket   = each.value.id
  policy   = data.aws_iam_policy_document.tls_only[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

# --------------------------------------------------------------------------------------------
# Analyst read access: the lakehouse/ prefix (bronze/silver/gold/audit) and nothing under
# restricted/, which holds residences and every position trace (docs/PRIVACY.md). Attach to the
# analysts' roles or groups; the jobs' execution role has its own policy.
# --------------------------------------------------------------------------------------------
data "aws_iam_policy_document" "analyst_read" {
  statement {
    sid       = "ListLakehousePrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.lakehouse.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.analyst_prefix}*"]
    }
  }

  statement {
    sid       = "ReadLakehouseTables"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.lakehouse.arn}/${var.analyst_prefix}*"]
  }

  # An explicit deny wins over any allow another policy of the analyst grants.
  statement {
    sid       = "DenyRestrictedPersonalData"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = ["${aws_s3_bucket.lakehouse.arn}/${var.restricted_prefix}*"]
  }

  statement {
    sid       = "DecryptLakehouseObjects"
    actions   = ["kms:Decrypt", "kms:DescribeKey"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_policy" "analyst_read" {
  name        = "${var.name_prefix}-analyst-read"
  description = "ev-fleet-analytics analysts: read the lakehouse/ tables, never restricted/ (personal data)."
  policy      = data.aws_iam_policy_document.analyst_read.json
  tags        = var.tags
}
