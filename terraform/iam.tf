# IAM. Each task has its own execution role (what ECS needs to start it: pull the image, write
# logs, read that task's secrets) and, where a container calls AWS, a task role. The api's task
# role only lets its collector write metrics; the migrate task has none: it gets no AWS
# credentials at all.

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  for_each = local.task_secrets

  name               = "${var.name}-${each.key}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  for_each = local.task_secrets

  role       = aws_iam_role.execution[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  for_each = local.task_secrets

  statement {
    sid       = "ReadOwnSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [for s in each.value : aws_secretsmanager_secret.app[s].arn]
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  for_each = local.task_secrets

  name   = "secrets"
  role   = aws_iam_role.execution[each.key].id
  policy = data.aws_iam_policy_document.execution_secrets[each.key].json
}

# The worker: send email, read the account's send rate, consume the feedback queue, publish
# offers.json (and, for its collector, remote_write below). Nothing else.
resource "aws_iam_role" "worker" {
  name               = "${var.name}-worker-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "worker" {
  # SES v2 SendEmail is authorized against the identity and the configuration set it uses.
  statement {
    sid     = "SendEmail"
    actions = ["ses:SendEmail"]
    resources = [
      aws_sesv2_email_identity.domain.arn,
      aws_sesv2_configuration_set.main.arn,
    ]

    condition {
      test     = "StringLike"
      variable = "ses:FromAddress"
      values   = ["*@${local.ses_domain}"]
    }
  }

  # GetAccount has no resource to scope to.
  statement {
    sid       = "ReadSendQuota"
    actions   = ["ses:GetAccount"]
    resources = ["*"]
  }

  # sqs:DeleteMessage also covers DeleteMessageBatch.
  statement {
    sid = "ConsumeFeedback"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
    ]
    resources = [aws_sqs_queue.ses_feedback.arn]
  }

  statement {
    sid       = "PublishOffers"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.offers.arn}/offers.json"]
  }
}

resource "aws_iam_role_policy" "worker" {
  name   = "worker"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

# The api's task role: the api itself calls no AWS service; its collector sidecar writes the
# task's metrics to the Prometheus workspace (alerts.tf). Nothing else.
resource "aws_iam_role" "api" {
  name               = "${var.name}-api-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

# The collectors of the api and worker tasks remote-write to the workspace, and only there.
data "aws_iam_policy_document" "remote_write" {
  statement {
    sid       = "RemoteWriteMetrics"
    actions   = ["aps:RemoteWrite"]
    resources = [aws_prometheus_workspace.main.arn]
  }
}

resource "aws_iam_role_policy" "remote_write" {
  for_each = { api = aws_iam_role.api.id, worker = aws_iam_role.worker.id }

  name   = "remote-write-metrics"
  role   = each.value
  policy = data.aws_iam_policy_document.remote_write.json
}

# For whoever runs `make site-deploy` (a CI role or an operator): sync the site bucket and
# invalidate the distribution, as `hugo deploy` does. Attach it; it is not attached here.
data "aws_iam_policy_document" "site_deploy" {
  statement {
    sid       = "ListSite"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.site.arn]
  }

  statement {
    sid       = "WriteSite"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.site.arn}/*"]
  }

  statement {
    sid       = "Invalidate"
    actions   = ["cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"]
    resources = [aws_cloudfront_distribution.site.arn]
  }
}

resource "aws_iam_policy" "site_deploy" {
  name        = "${var.name}-site-deploy"
  description = "Deploy the Hugo site to ${aws_s3_bucket.site.bucket} and invalidate the CDN."
  policy      = data.aws_iam_policy_document.site_deploy.json
}

# For ops: run the migrate task (README.md).
data "aws_iam_policy_document" "run_migrate" {
  statement {
    sid       = "RunMigrate"
    actions   = ["ecs:RunTask"]
    resources = [replace(aws_ecs_task_definition.migrate.arn, "/:\\d+$/", ":*")]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.main.arn]
    }
  }

  statement {
    sid       = "DescribeMigrate"
    actions   = ["ecs:DescribeTasks"]
    resources = ["*"]
  }

  statement {
    sid       = "PassMigrateRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution["migrate"].arn]
  }
}

resource "aws_iam_policy" "run_migrate" {
  name        = "${var.name}-run-migrate"
  description = "Run the ${var.name} migrate task."
  policy      = data.aws_iam_policy_document.run_migrate.json
}
