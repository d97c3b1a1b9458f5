output "cluster_id" {
  description = "EMR cluster id (aws emr add-steps --cluster-id)."
  value       = aws_emr_cluster.this.id
}

output "instance_role_arn" {
  description = "ARN of the cluster's EC2 instance role."
  value       = aws_iam_role.instance.arn
}
