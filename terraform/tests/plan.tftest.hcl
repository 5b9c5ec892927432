# Offline checks with a mocked AWS provider (nothing is created): `terraform init -backend=false` then
# `terraform test`. They catch wiring mistakes (wrong references, bad for_each keys, the
# security rules below) without an AWS account.

mock_provider "aws" {
  # Policy arguments are validated as JSON even in a mocked plan.
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }

  # The provider checks that ARNs look like ARNs, so mocked resources need plausible ones.
  mock_resource "aws_lb" {
    defaults = { arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/gpubroker-api/0123456789abcdef" }
  }

  mock_resource "aws_lb_target_group" {
    defaults = { arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gpubroker-api/0123456789abcdef" }
  }

  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/gpubroker-mock" }
  }

  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:123456789012:gpubroker-mock" }
  }

  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:us-east-1:123456789012:gpubroker-mock"
      url = "https://sqs.us-east-1.amazonaws.com/123456789012/gpubroker-mock"
    }
  }

  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gpubroker/mock-AbCdEf" }
  }

  mock_resource "aws_ecs_cluster" {
    defaults = { arn = "arn:aws:ecs:us-east-1:123456789012:cluster/gpubroker" }
  }

  mock_resource "aws_ecs_task_definition" {
    defaults = { arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/gpubroker-mock:1" }
  }

  mock_resource "aws_cloudfront_distribution" {
    defaults = { arn = "arn:aws:cloudfront::123456789012:distribution/EMOCK" }
  }

  mock_resource "aws_cloudfront_function" {
    defaults = { arn = "arn:aws:cloudfront::123456789012:function/gpubroker-index-html" }
  }

  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::gpubroker-mock" }
  }

  mock_resource "aws_sesv2_configuration_set" {
    defaults = { arn = "arn:aws:ses:us-east-1:123456789012:configuration-set/gpubroker-transactional" }
  }

  mock_resource "aws_sesv2_email_identity" {
    defaults = { arn = "arn:aws:ses:us-east-1:123456789012:identity/gpubroker.example" }
  }

  mock_resource "aws_iam_policy" {
    defaults = { arn = "arn:aws:iam::123456789012:policy/gpubroker-mock" }
  }

  mock_resource "aws_prometheus_workspace" {
    defaults = {
      arn                 = "arn:aws:aps:us-east-1:123456789012:workspace/ws-mock"
      prometheus_endpoint = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-mock/"
    }
  }

  override_data {
    target = data.aws_availability_zones.available
    values = { names = ["us-east-1a", "us-east-1b", "us-east-1c"] }
  }

  override_data {
    target = data.aws_caller_identity.current
    values = { account_id = "123456789012" }
  }

  override_data {
    target = data.aws_partition.current
    values = { partition = "aws" }
  }

  override_data {
    target = data.aws_region.current
    values = { name = "us-east-1" }
  }
}

variables {
  domain                     = "gpubroker.example"
  cloudfront_certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/site"
  api_origin_domain          = "origin.gpubroker.example"
  alb_certificate_arn        = "arn:aws:acm:us-east-1:123456789012:certificate/origin"
  api_image                  = "123456789012.dkr.ecr.us-east-1.amazonaws.com/gpubroker:1.0.0"
  sales_email                = "sales@gpubroker.example"
  alarm_email                = "ops@gpubroker.example"
  db_password                = "correct-horse-battery-staple"
}

run "plan" {
  command = apply

  assert {
    condition     = length(aws_subnet.private) == 2 && length(aws_subnet.public) == 2
    error_message = "two zones of subnets"
  }

  assert {
    condition     = aws_db_instance.main.storage_encrypted && !aws_db_instance.main.publicly_accessible && aws_db_instance.main.deletion_protection
    error_message = "the database is encrypted, private and protected"
  }

  assert {
    condition     = aws_sns_topic_subscription.ses_feedback.raw_message_delivery
    error_message = "raw message delivery"
  }

  assert {
    condition     = jsondecode(aws_sqs_queue.ses_feedback.redrive_policy).maxReceiveCount == 5
    error_message = "five receives before the DLQ"
  }

  assert {
    condition     = aws_sqs_queue.ses_feedback_dlq.message_retention_seconds > aws_sqs_queue.ses_feedback.message_retention_seconds
    error_message = "the DLQ keeps messages longer than the queue"
  }

  assert {
    condition     = aws_ecs_task_definition.api.task_role_arn == aws_iam_role.api.arn
    error_message = "the API's task role is its own (it only lets the collector write metrics)"
  }

  assert {
    condition = alltrue([for task, td in { api = aws_ecs_task_definition.api, worker = aws_ecs_task_definition.worker, migrate = aws_ecs_task_definition.migrate } :
      [for e in jsondecode(td.container_definitions)[0].environment : e.name] == jsondecode(file("env.json"))[task].environment &&
      [for e in jsondecode(td.container_definitions)[0].secrets : e.name] == jsondecode(file("env.json"))[task].secrets
    ])
    error_message = "every task gets the environment and secret names env.json lists"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.api.container_definitions)[0].command == ["api"]
    error_message = "the api service runs gpubroker api"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.worker.container_definitions)[0].command == ["worker"]
    error_message = "the worker service runs gpubroker worker"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.migrate.container_definitions)[0].command == ["migrate"]
    error_message = "the migrate task runs gpubroker migrate"
  }

  assert {
    condition     = length(jsondecode(aws_ecs_task_definition.api.container_definitions)[0].secrets) == 5
    error_message = "the API gets only its five secrets"
  }

  assert {
    condition     = contains([for s in jsondecode(aws_ecs_task_definition.api.container_definitions)[0].secrets : s.name], "ORIGIN_SECRET")
    error_message = "the API checks the origin secret"
  }

  assert {
    condition     = aws_secretsmanager_secret_version.origin_secret.secret_string == random_password.origin_secret.result && length(random_password.origin_secret.result) >= 32
    error_message = "the origin secret is generated, at least 32 characters as the api requires"
  }

  assert {
    condition = anytrue([for o in aws_cloudfront_distribution.site.origin : o.origin_id == "api" && anytrue([
      for h in o.custom_header : h.name == "X-Origin-Secret" && h.value == random_password.origin_secret.result
    ])])
    error_message = "CloudFront sends the origin secret to the API origin"
  }

  assert {
    condition     = alltrue([for o in aws_cloudfront_distribution.site.origin : o.origin_id == "api" || length(o.custom_header) == 0])
    error_message = "the S3 origins get no origin secret"
  }

  assert {
    condition = alltrue([for td in [aws_ecs_task_definition.api, aws_ecs_task_definition.worker] :
      contains([for e in jsondecode(td.container_definitions)[0].environment : "${e.name}=${e.value}"], "METRICS_ADDR=127.0.0.1:9090")
    ])
    error_message = "api and worker serve /metrics on loopback, for a scraper in the task"
  }

  assert {
    condition     = [for b in aws_cloudfront_distribution.site.ordered_cache_behavior : b.path_pattern] == ["/api/*", "/ops/*", "/offers.json"]
    error_message = "ordered behaviours"
  }

  assert {
    condition     = toset([for e in aws_cloudfront_distribution.site.custom_error_response : e.error_code]) == toset([400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504])
    error_message = "every error code CloudFront caches has a custom error response"
  }

  assert {
    condition     = alltrue([for e in aws_cloudfront_distribution.site.custom_error_response : e.error_caching_min_ttl == 0])
    error_message = "no error answer is cached at the edge (they apply to /api/* and /ops/* too)"
  }

  assert {
    condition     = [for e in aws_cloudfront_distribution.site.custom_error_response : e.error_code if coalesce(e.response_page_path, "-") != "-"] == [404]
    error_message = "only 404 maps to /404.html, so the API's 403s pass through"
  }

  assert {
    condition = alltrue([for td in [aws_ecs_task_definition.api, aws_ecs_task_definition.worker] :
      jsondecode(td.container_definitions)[1].name == "collector" && !jsondecode(td.container_definitions)[1].essential
    ])
    error_message = "api and worker tasks run a collector sidecar, not essential"
  }

  assert {
    condition     = aws_prometheus_rule_group_namespace.alerts.data == replace(file("../ops/alerts.yml"), "OPS_URL", "https://gpubroker.example")
    error_message = "the workspace evaluates ops/alerts.yml, OPS_URL replaced by the site's origin"
  }

  assert {
    condition     = aws_sns_topic_subscription.alarm_email.protocol == "email" && aws_sns_topic_subscription.alarm_email.endpoint == "ops@gpubroker.example"
    error_message = "ops are mailed the alarms"
  }

  # Without a zone no records are managed. (The with-zone case is not run here: a mocked
  # provider leaves the DKIM tokens of a configured dkim_signing_attributes block empty.)
  assert {
    condition     = length(aws_route53_record.dkim) == 0 && length(aws_route53_record.site) == 0
    error_message = "no DNS records without a zone"
  }
}
