# EMR Serverless Spark application. Job runs bring their own Python environment
# (spark.archives), code (--py-files) and Sedona jars; Delta comes with the release.

resource "aws_emrserverless_application" "this" {
  name          = "${var.name_prefix}-spark"
  release_label = var.release_label
  type          = "spark"
  # The packaged Python environment holds manylinux x86_64 wheels.
  architecture = "X86_64"

  maximum_capacity {
    cpu    = var.max_cpu
    memory = var.max_memory
    disk   = var.max_disk
  }

  auto_start_configuration {
    enabled = true
  }

  auto_stop_configuration {
    enabled              = true
    idle_timeout_minutes = var.idle_timeout_minutes
  }

  dynamic "network_configuration" {
    for_each = length(var.subnet_ids) > 0 ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  tags = var.tags
}
