# DynamoDB table of Delta Lake's S3DynamoDBLogStore (io.delta:delta-storage-s3-dynamodb).
#
# S3 has no put-if-absent, so two drivers committing the same version N of a Delta table can
# both write _delta_log/N.json and one commit silently replaces the other. The LogStore first
# claims N in this table with a conditional put (one writer wins), which gives Delta's
# optimistic concurrency the mutual exclusion it assumes; the project's run lease
# (audit.run_lease) relies on it. Entries expire through DynamoDB TTL on `expireTime` once the
# commit file is complete in S3 (Delta's default: one day later).

resource "aws_dynamodb_table" "this" {
  name                        = "${var.name_prefix}-delta-log"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "tablePath"
  range_key                   = "fileName"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "tablePath"
    type = "S"
  }

  attribute {
    name = "fileName"
    type = "S"
  }

  ttl {
    attribute_name = "expireTime"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}
