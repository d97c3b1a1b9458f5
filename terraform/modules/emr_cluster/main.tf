# Optional EMR on EC2 cluster (same EMR 7.x release, same artifacts, submitted as steps).
# Enabled from the root with enable_emr_cluster = true. The EMR managed policy v2 only acts on
# subnets and security groups tagged for-use-with-amazon-emr-managed-policies = true.

data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition
}

# ---- service role ------------------------------------------------------------------------
data "aws_iam_policy_document" "service_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["elasticmapreduce.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "service" {
  name               = "${var.name_prefix}-emr-service"
  assume_role_policy = data.aws_iam_policy_document.service_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "service" {
  role       = aws_iam_role.service.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"
}

data "aws_iam_policy_document" "pass_instance_role" {
  statement {
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.instance.arn]
  }
}

resource "aws_iam_role_policy" "service_pass_instance_role" {
  name   = "pass-instance-role"
  role   = aws_iam_role.service.id
  policy = data.aws_iam_policy_document.pass_instance_role.json
}

# ---- instance role: same data access as the serverless execution role ------------------
data "aws_iam_policy_document" "instance_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name               = "${var.name_prefix}-emr-instance"
  assume_role_policy = data.aws_iam_policy_document.instance_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "instance_data_access" {
  role       = aws_iam_role.instance.name
  policy_arn = var.data_access_policy_arn
}

resource "aws_iam_instance_profile" "instance" {
  name = "${var.name_prefix}-emr-instance"
  role = aws_iam_role.instance.name
  tags = var.tags
}

# ---- encryption at rest (S3 via EMRFS and local disks) -------------------------------------
resource "aws_emr_security_configuration" "this" {
  name = "${var.name_prefix}-emr"
  configuration = jsonencode({
    EncryptionConfiguration = {
      EnableAtRestEncryption    = true
      EnableInTransitEncryption = false # needs a TLS certificate bundle; see docs/DEPLOY.md
      AtRestEncryptionConfiguration = {
        S3EncryptionConfiguration = {
          EncryptionMode = "SSE-KMS"
          AwsKmsKey      = var.kms_key_arn
        }
        LocalDiskEncryptionConfiguration = {
          EncryptionKeyProviderType = "AwsKms"
          AwsKmsKey                 = var.kms_key_arn
          EnableEbsEncryption       = true
        }
      }
    }
  })
}

resource "aws_emr_cluster" "this" {
  #checkov:skip=CKV2_AWS_7:The cluster uses the EMR-managed security groups given in var.master_security_group_id/var.core_security_group_id; their rules are owned by the VPC stack, not this module.
  name                              = "${var.name_prefix}-spark"
  release_label                     = var.release_label
  applications                      = ["Spark"]
  service_role                      = aws_iam_role.service.arn
  security_configuration            = aws_emr_security_configuration.this.name
  log_uri                           = "s3://${var.logs_bucket}/emr-cluster/"
  log_encryption_kms_key_id         = var.kms_key_arn
  keep_job_flow_alive_when_no_steps = true
  termination_protection            = false
  ebs_root_volume_size              = 32

  auto_termination_policy {
    idle_timeout = var.idle_timeout_seconds
  }

  ec2_attributes {
    subnet_id                         = var.subnet_id
    instance_profile                  = aws_iam_instance_profile.instance.arn
    emr_managed_master_security_group = var.master_security_group_id
    emr_managed_slave_security_group  = var.core_security_group_id
    service_access_security_group     = var.service_access_security_group_id
  }

  master_instance_group {
    instance_type = var.master_instance_type
  }

  core_instance_group {
    instance_type  = var.core_instance_type
    instance_count = var.core_instance_count
    ebs_config {
      size                 = var.core_ebs_size_gb
      type                 = "gp3"
      volumes_per_instance = 1
    }
  }

  # Delta on EMR 7 (EC2) is switched on by the delta-defaults classification; the Python
  # environment is shipped per step (spark.archives), like on EMR Serverless.
  configurations_json = jsonencode([
    {
      Classification = "delta-defaults"
      Properties     = { "delta.enabled" = "true" }
    },
  ])

  tags = merge(var.tags, { "for-use-with-amazon-emr-managed-policies" = "true" })
}
