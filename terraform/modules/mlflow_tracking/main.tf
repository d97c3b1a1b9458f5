# A SageMaker managed MLflow tracking server: the tracking store and model registry the jobs log
# to on EMR/Glue. Chosen over a self-run server (ECS/EC2 + RDS + a load balancer) because AWS runs,
# patches and backs it up, it has no network endpoint to expose, and every request is signed with
# the caller's IAM credentials (the job role needs sagemaker-mlflow:* on this server's ARN, which
# modules/execution_role grants). Artifacts go to the project's artifacts bucket under mlflow/.

data "aws_partition" "current" {}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "SageMakerAssumeRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }
  }
}

# The role the tracking server itself uses to read and write the artifact store.
resource "aws_iam_role" "server" {
  name               = "${var.name_prefix}-mlflow-server"
  description        = "SageMaker MLflow tracking server of ev-fleet-analytics: its artifact store only."
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "artifacts" {
  statement {
    sid       = "ArtifactStoreObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.artifacts_bucket_arn}/${var.artifact_prefix}*"]
  }
  # GetBucketLocation carries no s3:prefix, so it cannot share the listing statement's condition.
  statement {
    sid       = "ArtifactStoreBucketLocation"
    actions   = ["s3:GetBucketLocation"]
    resources = [var.artifacts_bucket_arn]
  }
  statement {
    sid       = "ArtifactStoreListing"
    actions   = ["s3:ListBucket"]
    resources = [var.artifacts_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.artifact_prefix}*"]
    }
  }
  statement {
    sid       = "ArtifactStoreKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "artifacts" {
  name   = "artifact-store"
  role   = aws_iam_role.server.id
  policy = data.aws_iam_policy_document.artifacts.json
}

resource "aws_sagemaker_mlflow_tracking_server" "this" {
  tracking_server_name            = "${var.name_prefix}-mlflow"
  role_arn                        = aws_iam_role.server.arn
  artifact_store_uri              = "s3://${var.artifacts_bucket}/${var.artifact_prefix}"
  tracking_server_size            = var.size
  mlflow_version                  = var.mlflow_version
  automatic_model_registration    = false
  weekly_maintenance_window_start = var.weekly_maintenance_window_start
  tags                            = var.tags

  depends_on = [aws_iam_role_policy.artifacts]
}
