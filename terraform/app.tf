# The application: one image, three ECS task definitions (`gpubroker api`, `gpubroker worker`,
# `gpubroker migrate`), two services, and the ALB CloudFront sends /api/* and /ops/* to.

locals {
  worker_image = coalesce(var.worker_image, var.api_image)

  # Secrets Manager secrets, injected as environment variables by ECS. DATABASE_URL gets its
  # value from database.tf and ORIGIN_SECRET from random_password.origin_secret below; set the
  # others with `aws secretsmanager put-secret-value`.
  secret_names = toset([
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "ADMIN_PASSWORD",
    "DATABASE_URL",
    "LAMBDA_API_KEY",
    "RUNPOD_API_KEY",
    "ORIGIN_SECRET",
  ])

  # Which secrets each task gets (and, through its execution role, may read). The API never
  # calls a GPU provider; the migrate task only needs the database. Only the API is behind
  # CloudFront, so only it checks the origin secret.
  task_secrets = {
    api     = ["DATABASE_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "ADMIN_PASSWORD", "ORIGIN_SECRET"]
    worker  = ["DATABASE_URL", "STRIPE_SECRET_KEY", "ADMIN_PASSWORD", "LAMBDA_API_KEY", "RUNPOD_API_KEY"]
    migrate = ["DATABASE_URL"]
  }

  common_environment = [
    { name = "PUBLIC_URL", value = local.public_url },
    { name = "AWS_REGION", value = local.region },
    { name = "LOG_LEVEL", value = var.log_level },
    { name = "ADMIN_USER", value = var.admin_user },
    { name = "SALES_EMAIL", value = var.sales_email },
  ]

  worker_environment = concat(local.common_environment, [
    { name = "METRICS_ADDR", value = var.metrics_addr },
    { name = "SES_FROM", value = local.ses_from },
    { name = "SES_CONFIGURATION_SET", value = aws_sesv2_configuration_set.main.configuration_set_name },
    { name = "SQS_FEEDBACK_QUEUE_URL", value = aws_sqs_queue.ses_feedback.url },
    { name = "OFFERS_BUCKET", value = aws_s3_bucket.offers.bucket },
  ])

  container_port = 8080
}

resource "aws_secretsmanager_secret" "app" {
  for_each = local.secret_names

  name                    = "${var.name}/${each.key}"
  description             = "${each.key} for ${var.name}"
  recovery_window_in_days = 7
}

# The origin secret: CloudFront adds it to every request it sends the ALB (the API origin's
# custom header, site.tf) and the api answers 403 to any request without it but the ALB's
# health check. The ALB's security group admits every CloudFront distribution, anyone's;
# this header tells ours apart. It is in the state, like the database password.
resource "random_password" "origin_secret" {
  length  = 48
  special = false
}

resource "aws_secretsmanager_secret_version" "origin_secret" {
  secret_id     = aws_secretsmanager_secret.app["ORIGIN_SECRET"].id
  secret_string = random_password.origin_secret.result
}

resource "aws_cloudwatch_log_group" "app" {
  for_each = toset(["api", "worker", "migrate"])

  name              = "/ecs/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
}

resource "aws_ecs_cluster" "main" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "main" {
  cluster_name       = aws_ecs_cluster.main.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

# Security groups: the ALB takes HTTPS only from CloudFront's origin-facing addresses, so the API
# cannot be reached around the CDN; tasks take traffic only from the ALB; the database only
# from tasks.

data "aws_ec2_managed_prefix_list" "cloudfront" {
  name = "com.amazonaws.global.cloudfront.origin-facing"
}

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "ALB: HTTPS from CloudFront only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "alb_from_cloudfront" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from CloudFront"
  prefix_list_id    = data.aws_ec2_managed_prefix_list.cloudfront.id
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the API tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
}

resource "aws_security_group" "tasks" {
  name        = "${var.name}-tasks"
  description = "ECS tasks: HTTP from the ALB; out to the database and the internet"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "HTTP from the ALB"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
}

# Stripe, the GPU providers and the AWS APIs are on the internet (through the NAT gateway).
resource "aws_vpc_security_group_egress_rule" "tasks_out" {
  security_group_id = aws_security_group.tasks.id
  description       = "Outbound"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

resource "aws_lb" "api" {
  name                       = "${var.name}-api"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = aws_subnet.public[*].id
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  idle_timeout               = 60
}

resource "aws_lb_target_group" "api" {
  name                 = "${var.name}-api"
  port                 = local.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = aws_vpc.main.id
  deregistration_delay = 30

  # /healthz, not /readyz: when Postgres is down every task would fail /readyz and the ALB
  # would have nothing to send the 503s to, and ECS would replace healthy tasks in a loop.
  health_check {
    path                = "/healthz"
    matcher             = "200"
    interval            = 15
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.api.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.alb_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}

resource "aws_route53_record" "api_origin" {
  count = local.manage_dns ? 1 : 0

  zone_id = var.route53_zone_id
  name    = var.api_origin_domain
  type    = "A"

  alias {
    name                   = aws_lb.api.dns_name
    zone_id                = aws_lb.api.zone_id
    evaluate_target_health = true
  }
}

resource "aws_ecs_task_definition" "api" {
  family                   = "${var.name}-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.api_cpu
  memory                   = var.api_memory
  execution_role_arn       = aws_iam_role.execution["api"].arn
  # No task role: the API calls no AWS service, so its tasks get no AWS credentials at all.

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([{
    name       = "api"
    image      = var.api_image
    essential  = true
    entryPoint = ["gpubroker"]
    command    = ["api"]
    portMappings = [{
      containerPort = local.container_port
      protocol      = "tcp"
    }]
    environment = concat(local.common_environment, [
      { name = "ADDR", value = ":${local.container_port}" },
      # CloudFront and the ALB each append to X-Forwarded-For: rate limits count the viewer.
      # Safe only because nothing but CloudFront gets an answer (ORIGIN_SECRET).
      { name = "TRUSTED_PROXY_HOPS", value = "2" },
      { name = "METRICS_ADDR", value = var.metrics_addr },
    ])
    secrets = [for s in local.task_secrets.api : { name = s, valueFrom = aws_secretsmanager_secret.app[s].arn }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.app["api"].name
        awslogs-region        = local.region
        awslogs-stream-prefix = "api"
      }
    }
  }])
}

resource "aws_ecs_task_definition" "worker" {
  family                   = "${var.name}-worker"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.worker_cpu
  memory                   = var.worker_memory
  execution_role_arn       = aws_iam_role.execution["worker"].arn
  task_role_arn            = aws_iam_role.worker.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([{
    name        = "worker"
    image       = local.worker_image
    essential   = true
    entryPoint  = ["gpubroker"]
    command     = ["worker"]
    environment = local.worker_environment
    secrets     = [for s in local.task_secrets.worker : { name = s, valueFrom = aws_secretsmanager_secret.app[s].arn }]
    # Time for River to finish the jobs in hand after SIGTERM (Fargate allows up to 120 s).
    stopTimeout = 60
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.app["worker"].name
        awslogs-region        = local.region
        awslogs-stream-prefix = "worker"
      }
    }
  }])
}

# Run once per release, before the services roll (README.md): the SQL migrations and River's.
resource "aws_ecs_task_definition" "migrate" {
  family                   = "${var.name}-migrate"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.execution["migrate"].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([{
    name        = "migrate"
    image       = var.api_image
    essential   = true
    entryPoint  = ["gpubroker"]
    command     = ["migrate"]
    environment = local.common_environment
    secrets     = [for s in local.task_secrets.migrate : { name = s, valueFrom = aws_secretsmanager_secret.app[s].arn }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.app["migrate"].name
        awslogs-region        = local.region
        awslogs-stream-prefix = "migrate"
      }
    }
  }])
}

resource "aws_ecs_service" "api" {
  name                              = "api"
  cluster                           = aws_ecs_cluster.main.id
  task_definition                   = aws_ecs_task_definition.api.arn
  desired_count                     = var.api_desired_count
  launch_type                       = "FARGATE"
  health_check_grace_period_seconds = 30

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = "api"
    container_port   = local.container_port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  depends_on = [aws_lb_listener.https]
}

resource "aws_ecs_service" "worker" {
  name            = "worker"
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.worker.arn
  desired_count   = var.worker_desired_count
  launch_type     = "FARGATE"

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
}
