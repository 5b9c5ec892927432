# Alerting: Amazon Managed Service for Prometheus evaluates ops/alerts.yml over the metrics the
# collector in every api and worker task writes (app.tf), and its Alertmanager sends what fires
# to the alarms topic, which mails ops. The CloudWatch alarm on the SES feedback DLQ
# (email.tf) publishes to the same topic.

resource "aws_prometheus_workspace" "main" {
  alias = var.name
}

# ops/alerts.yml is the one source of the rules: `make test` checks it with promtool and runs
# its unit tests (ops/alerts_test.yml). Its runbook links start with OPS_URL, the origin the ops
# pages are served from: the site's, since CloudFront sends /ops/* to the api.
resource "aws_prometheus_rule_group_namespace" "alerts" {
  name         = "${var.name}-alerts"
  workspace_id = aws_prometheus_workspace.main.id
  data         = replace(file("${path.module}/../ops/alerts.yml"), "OPS_URL", local.public_url)
}

# Every alert, page or ticket, goes to the alarms topic. SNS subjects are at most 100
# characters: the alert's name and its severity.
resource "aws_prometheus_alert_manager_definition" "main" {
  workspace_id = aws_prometheus_workspace.main.id
  definition   = <<-EOT
    alertmanager_config: |
      route:
        receiver: ops
        group_by: [alertname]
        group_wait: 30s
        group_interval: 5m
        repeat_interval: 4h
      receivers:
        - name: ops
          sns_configs:
            - topic_arn: ${aws_sns_topic.alarms.arn}
              sigv4:
                region: ${local.region}
              subject: '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})'
  EOT
}

resource "aws_sns_topic" "alarms" {
  name = "${var.name}-alarms"
}

# Replaces the topic's default policy, so it keeps the default's statement (the account's own
# principals, CloudWatch alarms among them) and lets our workspace's Alertmanager publish.
data "aws_iam_policy_document" "alarms_topic" {
  statement {
    sid = "AccountOwner"
    actions = [
      "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:AddPermission", "sns:RemovePermission",
      "sns:DeleteTopic", "sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:Publish",
    ]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "StringEquals"
      variable = "AWS:SourceOwner"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "PrometheusAlertmanager"
    actions   = ["sns:Publish", "sns:GetTopicAttributes"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["aps.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_prometheus_workspace.main.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_topic.json
}

# Ops get every alarm by email. SNS mails a confirmation first: until someone follows its link,
# nothing is delivered.
resource "aws_sns_topic_subscription" "alarm_email" {
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# It was optional (count) before alerting existed.
moved {
  from = aws_sns_topic_subscription.alarm_email[0]
  to   = aws_sns_topic_subscription.alarm_email
}
