# CloudWatch log groups for EMR Serverless job runs and Glue continuous logging, encrypted
# with the project key and kept var.retention_days.

resource "aws_cloudwatch_log_group" "this" {
  for_each          = var.log_groups
  name              = "${var.log_group_prefix}${each.value}"
  retention_in_days = var.retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}
