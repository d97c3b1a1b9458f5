output "table_name" {
  description = "DynamoDB table name (spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName, EVFA_DELTA_LOG_TABLE)."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "DynamoDB table ARN (the execution role's DeltaLogStore statement)."
  value       = aws_dynamodb_table.this.arn
}
