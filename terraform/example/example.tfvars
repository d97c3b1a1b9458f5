# terraform -chdir=terraform/example apply -var-file=example.tfvars -var-file=../../dist/entrypoints.auto.tfvars.json
region      = "eu-west-1"
name_prefix = "evfa"
environment = "dev"

emr_release_label = "emr-7.13.0"
emr_max_cpu       = "64 vCPU"
emr_max_memory    = "256 GB"

enable_glue_jobs       = true
glue_version           = "5.1"
glue_worker_type       = "G.1X"
glue_number_of_workers = 10

log_retention_days  = 365
log_expiration_days = 90

# Optional EMR on EC2 cluster: set the network ids of an existing VPC.
enable_emr_cluster = false
# emr_cluster_subnet_id                        = "subnet-0123456789abcdef0"
# emr_cluster_master_security_group_id         = "sg-0123456789abcdef0"
# emr_cluster_core_security_group_id           = "sg-0123456789abcdef1"
# emr_cluster_service_access_security_group_id = "sg-0123456789abcdef2"

tags = {
  owner = "data-platform"
}
