output "site_url" {
  description = "PUBLIC_URL."
  value       = local.public_url
}

output "cloudfront_distribution_id" {
  description = "For hugo deploy's cloudFrontDistributionID."
  value       = aws_cloudfront_distribution.site.id
}

output "cloudfront_domain_name" {
  description = "Point var.domain here (done when route53_zone_id is set)."
  value       = aws_cloudfront_distribution.site.domain_name
}

output "site_bucket" {
  description = "The bucket hugo deploy syncs."
  value       = aws_s3_bucket.site.bucket
}

output "hugo_deploy_url" {
  description = "The URL of hugo deploy's target."
  value       = "s3://${aws_s3_bucket.site.bucket}?region=${local.region}"
}

output "offers_bucket" {
  description = "OFFERS_BUCKET; the worker writes offers.json there, served at /offers.json."
  value       = aws_s3_bucket.offers.bucket
}

output "alb_dns_name" {
  description = "Point var.api_origin_domain here (done when route53_zone_id is set)."
  value       = aws_lb.api.dns_name
}

output "ecs_cluster" {
  description = "The ECS cluster."
  value       = aws_ecs_cluster.main.name
}

output "migrate_task_definition" {
  description = "The migrate task definition (family:revision)."
  value       = "${aws_ecs_task_definition.migrate.family}:${aws_ecs_task_definition.migrate.revision}"
}

output "run_migrate_command" {
  description = "Runs the migrations once; see README.md."
  value = join(" ", [
    "aws ecs run-task",
    "--region ${local.region}",
    "--cluster ${aws_ecs_cluster.main.name}",
    "--launch-type FARGATE",
    "--task-definition ${aws_ecs_task_definition.migrate.family}:${aws_ecs_task_definition.migrate.revision}",
    "--network-configuration 'awsvpcConfiguration={subnets=[${join(",", aws_subnet.private[*].id)}],securityGroups=[${aws_security_group.tasks.id}],assignPublicIp=DISABLED}'",
    "--query 'tasks[0].taskArn' --output text",
  ])
}

output "secret_arns" {
  description = "Secrets to fill with aws secretsmanager put-secret-value (DATABASE_URL is set by Terraform)."
  value       = { for k, s in aws_secretsmanager_secret.app : k => s.arn }
}

output "db_endpoint" {
  description = "The database's address (private)."
  value       = aws_db_instance.main.address
}

output "ses_configuration_set" {
  description = "SES_CONFIGURATION_SET."
  value       = aws_sesv2_configuration_set.main.configuration_set_name
}

output "ses_feedback_queue_url" {
  description = "SQS_FEEDBACK_QUEUE_URL."
  value       = aws_sqs_queue.ses_feedback.url
}

output "ses_feedback_dlq_url" {
  description = "The dead-letter queue of the feedback queue."
  value       = aws_sqs_queue.ses_feedback_dlq.url
}

output "site_deploy_policy_arn" {
  description = "Attach to the CI role or user that runs make site-deploy."
  value       = aws_iam_policy.site_deploy.arn
}

output "run_migrate_policy_arn" {
  description = "Attach to whoever runs the migrate task."
  value       = aws_iam_policy.run_migrate.arn
}

output "dns_records" {
  description = "The records to create when route53_zone_id is empty."
  value = concat(
    [
      { name = var.domain, type = "ALIAS (A/AAAA) or CNAME", value = aws_cloudfront_distribution.site.domain_name },
      { name = var.api_origin_domain, type = "ALIAS (A) or CNAME", value = aws_lb.api.dns_name },
      { name = aws_sesv2_email_identity_mail_from_attributes.domain.mail_from_domain, type = "MX", value = "10 feedback-smtp.${local.region}.amazonses.com" },
      { name = aws_sesv2_email_identity_mail_from_attributes.domain.mail_from_domain, type = "TXT", value = "v=spf1 include:amazonses.com ~all" },
    ],
    [for t in local.dkim_tokens : { name = "${t}._domainkey.${local.ses_domain}", type = "CNAME", value = "${t}.dkim.amazonses.com" }],
  )
}

output "prometheus_workspace_id" {
  description = "The Prometheus workspace that evaluates ops/alerts.yml (awscurl or Grafana query it)."
  value       = aws_prometheus_workspace.main.id
}

output "prometheus_endpoint" {
  description = "The workspace's Prometheus endpoint (queries under api/v1/, signed with SigV4 for service aps): the URL of Grafana's data source for ops/dashboard.json."
  value       = aws_prometheus_workspace.main.prometheus_endpoint
}

output "alarms_topic_arn" {
  description = "The SNS topic that mails ops every Prometheus alert and the DLQ alarm."
  value       = aws_sns_topic.alarms.arn
}
