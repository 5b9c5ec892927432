variable "region" {
  description = "AWS region for everything except the CloudFront certificate (which is always in us-east-1)."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Prefix for resource names."
  type        = string
  default     = "gpubroker"
}

variable "domain" {
  description = "The site's domain, e.g. gpubroker.example. PUBLIC_URL is https://<domain>."
  type        = string
}

variable "cloudfront_certificate_arn" {
  description = "ACM certificate for var.domain, issued in us-east-1 (CloudFront only uses certificates from there)."
  type        = string
}

variable "api_origin_domain" {
  description = "DNS name CloudFront uses to reach the ALB over HTTPS, e.g. origin.gpubroker.example. Must point at the ALB (done here when route53_zone_id is set)."
  type        = string
}

variable "alb_certificate_arn" {
  description = "ACM certificate for var.api_origin_domain, in var.region."
  type        = string
}

variable "route53_zone_id" {
  description = "Hosted zone for the records (site, ALB origin, SES DKIM and MAIL FROM). Empty: create them yourself from the dns_records output."
  type        = string
  default     = ""
}

variable "cloudfront_price_class" {
  description = "CloudFront price class."
  type        = string
  default     = "PriceClass_100"
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
  default     = "10.40.0.0/16"
}

# Application

variable "api_image" {
  description = "Container image for `gpubroker api` (and the migrate task): the repository's Dockerfile, built and pushed with `make image IMAGE=<registry>/gpubroker:<tag>` (a static binary on distroless, non-root, entrypoint `gpubroker`)."
  type        = string
}

variable "worker_image" {
  description = "Container image for `gpubroker worker`. Empty: the api image (it is one binary)."
  type        = string
  default     = ""
}

variable "cpu_architecture" {
  description = "CPU architecture of the images: X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "api_desired_count" {
  description = "API tasks. 0 during the first apply, until secrets are set and migrations have run."
  type        = number
  default     = 2
}

variable "worker_desired_count" {
  description = "Worker tasks. River coordinates several through Postgres; 0 during the first apply."
  type        = number
  default     = 1
}

variable "api_cpu" {
  description = "Fargate CPU units of an API task."
  type        = number
  default     = 512
}

variable "api_memory" {
  description = "Memory (MiB) of an API task."
  type        = number
  default     = 1024
}

variable "worker_cpu" {
  description = "Fargate CPU units of a worker task."
  type        = number
  default     = 512
}

variable "worker_memory" {
  description = "Memory (MiB) of a worker task."
  type        = number
  default     = 1024
}

variable "log_level" {
  description = "LOG_LEVEL of the services."
  type        = string
  default     = "info"
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention of the services' logs."
  type        = number
  default     = 30
}

variable "admin_user" {
  description = "ADMIN_USER for the ops routes (the password is the ADMIN_PASSWORD secret, at least 16 characters)."
  type        = string
  default     = "admin"
}

variable "metrics_addr" {
  description = "METRICS_ADDR of the api and worker tasks: /metrics without auth, for a scraper in the same task (awsvpc tasks share 127.0.0.1). Never routed through the ALB or CloudFront."
  type        = string
  default     = "127.0.0.1:9090"
}

variable "sales_email" {
  description = "SALES_EMAIL: where contact-form messages go."
  type        = string
}

# Database

variable "db_engine_version" {
  description = "PostgreSQL major version."
  type        = string
  default     = "17"
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.micro"
}

variable "db_allocated_storage" {
  description = "Initial storage (GiB); it grows up to db_max_allocated_storage."
  type        = number
  default     = 20
}

variable "db_max_allocated_storage" {
  description = "Storage autoscaling ceiling (GiB)."
  type        = number
  default     = 100
}

variable "db_name" {
  description = "Database name."
  type        = string
  default     = "gpubroker"
}

variable "db_username" {
  description = "Database master user."
  type        = string
  default     = "gpubroker"
}

variable "db_password" {
  description = "Database master password (set TF_VAR_db_password). It ends up in the state, inside DATABASE_URL: keep the state bucket encrypted and private."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.db_password) >= 16 && !can(regex("[\\s/@:\"]", var.db_password))
    error_message = "db_password must have at least 16 characters and no whitespace, '/', '@', ':' or '\"' (RDS rejects some, and it goes into a URL)."
  }
}

variable "db_multi_az" {
  description = "Run a standby in a second zone."
  type        = bool
  default     = false
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database (turn off, apply, then destroy). Also decides whether a final snapshot is taken."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Automated backup retention."
  type        = number
  default     = 7
}

# Email

variable "ses_domain" {
  description = "Domain verified in SES and used in the From address. Empty: var.domain."
  type        = string
  default     = ""
}

variable "ses_from" {
  description = "SES_FROM. Empty: \"GPU Broker <no-reply@<ses domain>>\"."
  type        = string
  default     = ""
}

variable "alarm_email" {
  description = "Ops' address, subscribed to the alarms topic: the Prometheus alerts of ops/alerts.yml and the SES feedback DLQ alarm. Confirm the subscription from the email SNS sends."
  type        = string

  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an email address: alerts go nowhere without one."
  }
}

# Metrics and alerts

variable "collector_image" {
  description = "The ADOT collector image run beside the api and the worker (scrapes METRICS_ADDR, remote-writes to the Prometheus workspace)."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
}
