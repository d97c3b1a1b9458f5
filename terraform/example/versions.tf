terraform {
  required_version = ">= 1.5.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80.0, < 7.0.0"
    }
  }

  # Keep state remote and locked in real deployments, e.g.:
  # backend "s3" {
  #   bucket       = "<state bucket>"
  #   key          = "ev-fleet-analytics/terraform.tfstate"
  #   region       = "<region>"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}
