# One Glue 5.x Spark job per entry point (jobs/<name>.py). The script is the thin entry script
# uploaded by `make submit-glue` to s3://<artifacts>/<entrypoint_prefix><name>.py; code, Sedona
# jars and Python requirements are passed per run (they change with every release).

resource "aws_glue_security_configuration" "this" {
  name = "${var.name_prefix}-glue"

  encryption_configuration {
    cloudwatch_encryption {
      cloudwatch_encryption_mode = "SSE-KMS"
      kms_key_arn                = var.kms_key_arn
    }

    job_bookmarks_encryption {
      job_bookmarks_encryption_mode = "CSE-KMS"
      kms_key_arn                   = var.kms_key_arn
    }

    s3_encryption {
      s3_encryption_mode = "SSE-KMS"
      kms_key_arn        = var.kms_key_arn
    }
  }
}

resource "aws_glue_job" "this" {
  for_each = toset(var.job_names)

  name                   = "${var.name_prefix}-${each.key}"
  description            = "ev-fleet-analytics jobs/${each.key}.py"
  role_arn               = var.execution_role_arn
  glue_version           = var.glue_version
  worker_type            = var.worker_type
  number_of_workers      = var.number_of_workers
  timeout                = var.timeout_minutes
  max_retries            = 0 # jobs are idempotent, but a failed run should be looked at first
  security_configuration = aws_glue_security_configuration.this.name

  command {
    name            = "glueetl"
    python_version  = "3"
    script_location = "s3://${var.artifacts_bucket}/${var.entrypoint_prefix}${each.key}.py"
  }

  execution_property {
    max_concurrent_runs = 1
  }

  default_arguments = merge(
    {
      "--job-language"                     = "python"
      "--datalake-formats"                 = "delta"
      "--enable-continuous-cloudwatch-log" = "true"
      "--continuous-log-logGroup"          = var.log_group_name
      "--enable-metrics"                   = "true"
      "--enable-spark-ui"                  = "true"
      "--spark-event-logs-path"            = "s3://${var.logs_bucket}/glue/spark-events/${each.key}/"
      "--TempDir"                          = "s3://${var.artifacts_bucket}/glue/tmp/"
      "--job-bookmark-option"              = "job-bookmark-disable"
      # Hive catalog on the Glue Data Catalog for tables by name (jobs/catalog.py, catalog.metastore: glue).
      "--enable-glue-datacatalog" = "true"
    },
    var.default_arguments,
  )

  tags = var.tags
}
