# SES: the sending domain (DKIM, custom MAIL FROM), a configuration set that publishes bounces
# and complaints to SNS, and SNS → SQS (raw delivery) with a dead-letter queue, read by the
# worker's feedback consumer.

resource "aws_sesv2_configuration_set" "main" {
  configuration_set_name = "${var.name}-transactional"

  reputation_options {
    reputation_metrics_enabled = true
  }

  sending_options {
    sending_enabled = true
  }

  # SES refuses suppressed addresses on its own too; our Store keeps the app from trying.
  suppression_options {
    suppressed_reasons = ["BOUNCE", "COMPLAINT"]
  }
}

resource "aws_sesv2_email_identity" "domain" {
  email_identity = local.ses_domain
  # The identity's default configuration set: feedback is published even for a message sent
  # without SES_CONFIGURATION_SET.
  configuration_set_name = aws_sesv2_configuration_set.main.configuration_set_name

  dkim_signing_attributes {
    next_signing_key_length = "RSA_2048_BIT"
  }
}

# Bounces come back to bounce.<domain> rather than amazonses.com, so SPF aligns with the From
# domain for DMARC.
resource "aws_sesv2_email_identity_mail_from_attributes" "domain" {
  email_identity         = aws_sesv2_email_identity.domain.email_identity
  mail_from_domain       = "bounce.${local.ses_domain}"
  behavior_on_mx_failure = "USE_DEFAULT_VALUE"
}

resource "aws_sesv2_configuration_set_event_destination" "feedback" {
  configuration_set_name = aws_sesv2_configuration_set.main.configuration_set_name
  event_destination_name = "feedback-sns"

  event_destination {
    enabled              = true
    matching_event_types = ["BOUNCE", "COMPLAINT"]

    sns_destination {
      topic_arn = aws_sns_topic.ses_feedback.arn
    }
  }

  depends_on = [aws_sns_topic_policy.ses_feedback]
}

resource "aws_sns_topic" "ses_feedback" {
  name = "${var.name}-ses-feedback"
}

data "aws_iam_policy_document" "ses_feedback_topic" {
  statement {
    sid       = "SESPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.ses_feedback.arn]

    principals {
      type        = "Service"
      identifiers = ["ses.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "AWS:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = ["arn:${local.partition}:ses:${local.region}:${local.account_id}:configuration-set/${aws_sesv2_configuration_set.main.configuration_set_name}"]
    }
  }
}

resource "aws_sns_topic_policy" "ses_feedback" {
  arn    = aws_sns_topic.ses_feedback.arn
  policy = data.aws_iam_policy_document.ses_feedback_topic.json
}

# The dead-letter queue keeps what the consumer could not parse or store for 14 days, longer
# than the source queue, so a message is still there when someone looks at the alarm.
resource "aws_sqs_queue" "ses_feedback_dlq" {
  name                      = "${var.name}-ses-feedback-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "ses_feedback" {
  name                      = "${var.name}-ses-feedback"
  message_retention_seconds = 345600
  receive_wait_time_seconds = 20
  # Longer than the worst case of one batch: ten Store transactions and a delete.
  visibility_timeout_seconds = 60
  sqs_managed_sse_enabled    = true

  # Five failed receives (unparsable, or the Store failing) and the message moves to the DLQ.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.ses_feedback_dlq.arn
    maxReceiveCount     = 5
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "ses_feedback_dlq" {
  queue_url = aws_sqs_queue.ses_feedback_dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.ses_feedback.arn]
  })
}

data "aws_iam_policy_document" "ses_feedback_queue" {
  statement {
    sid       = "FeedbackTopicSend"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.ses_feedback.arn]

    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_sns_topic.ses_feedback.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "ses_feedback" {
  queue_url = aws_sqs_queue.ses_feedback.id
  policy    = data.aws_iam_policy_document.ses_feedback_queue.json
}

# Raw delivery: the queue body is SES's JSON itself, not an SNS envelope around it (the consumer
# reads both, so turning this off does not break it).
resource "aws_sns_topic_subscription" "ses_feedback" {
  topic_arn            = aws_sns_topic.ses_feedback.arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.ses_feedback.arn
  raw_message_delivery = true

  depends_on = [aws_sqs_queue_policy.ses_feedback]
}

# Alarms (the topic, which mails ops, is in alerts.tf)

# Anything in the DLQ is feedback we failed to record: a bounced address may still be mailed.
resource "aws_cloudwatch_metric_alarm" "ses_feedback_dlq" {
  alarm_name          = "${var.name}-ses-feedback-dlq-not-empty"
  alarm_description   = "SES feedback messages the worker could not handle are in ${aws_sqs_queue.ses_feedback_dlq.name}. Inspect them, fix the cause, then redrive."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.ses_feedback_dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# DNS for SES: three DKIM CNAMEs and the MAIL FROM MX and SPF records.

locals {
  dkim_tokens = aws_sesv2_email_identity.domain.dkim_signing_attributes[0].tokens
}

resource "aws_route53_record" "dkim" {
  # count, not for_each: the tokens are only known after apply, but there are always three.
  count = local.manage_dns ? 3 : 0

  zone_id = var.route53_zone_id
  name    = "${local.dkim_tokens[count.index]}._domainkey.${local.ses_domain}"
  type    = "CNAME"
  ttl     = 1800
  records = ["${local.dkim_tokens[count.index]}.dkim.amazonses.com"]
}

resource "aws_route53_record" "mail_from_mx" {
  count = local.manage_dns ? 1 : 0

  zone_id = var.route53_zone_id
  name    = aws_sesv2_email_identity_mail_from_attributes.domain.mail_from_domain
  type    = "MX"
  ttl     = 1800
  records = ["10 feedback-smtp.${local.region}.amazonses.com"]
}

resource "aws_route53_record" "mail_from_spf" {
  count = local.manage_dns ? 1 : 0

  zone_id = var.route53_zone_id
  name    = aws_sesv2_email_identity_mail_from_attributes.domain.mail_from_domain
  type    = "TXT"
  ttl     = 1800
  records = ["v=spf1 include:amazonses.com ~all"]
}
