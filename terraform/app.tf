# The application: one image, three ECS task definitions (`gpubroker api`, `gpubroker worker`,
# `gpubroker migrate`, their environment named in env.json), two services, and the ALB
# CloudFront sends /api/* and /ops/* to (the api serves the ops console and River UI).

locals {
  worker_image = coalesce(var.worker_image, var.api_image)

  # Each task's environment and secret names: env.json, which cmd/gpubroker's
  # TestTerraformEnvironmentStartsEveryMode reads too, starting every mode of the production
  # build with exactly those names. A name listed there without a value in env_values below
  # fails the plan (an invalid index).
  task_env = jsondecode(file("${path.module}/env.json"))

  # Secrets Manager secrets, injected as environment variables by ECS: every secret a task
  # lists. DATABASE_URL gets its value from database.tf and ORIGIN_SECRET from
  # random_password.origin_secret below; set the others with `aws secretsmanager put-secret-value`.
  secret_names = toset(flatten([for task in local.task_env : task.secrets]))

  # Which secrets each task gets (and, through its execution role, may read). The API never
  # calls a GPU provider; only it receives Stripe's webhooks and sits behind CloudFront (the
  # origin secret); the migrate task only needs the database.
  task_secrets = { for name, task in local.task_env : name => task.secrets }

  # The value of every environment variable a task may list in env.json.
  env_values = {
    PUBLIC_URL  = local.public_url
    AWS_REGION  = local.region
    LOG_LEVEL   = var.log_level
    ADMIN_USER  = var.admin_user
    SALES_EMAIL = var.sales_email
    ADDR        = ":${local.container_port}"
    # CloudFront and the ALB each append to X-Forwarded-For: rate limits count the viewer.
    # Safe only because nothing but CloudFront gets an answer (ORIGIN_SECRET).
    TRUSTED_PROXY_HOPS     = "2"
    METRICS_ADDR           = var.metrics_addr
    SES_FROM               = local.ses_from
    SES_CONFIGURATION_SET  = aws_sesv2_configuration_set.main.configuration_set_name
    SQS_FEEDBACK_QUEUE_URL = aws_sqs_queue.ses_feedback.url
    OFFERS_BUCKET          = aws_s3_bucket.offers.bucket
  }

  task_environment = { for name, task in local.task_env : name => [for v in task.environment : { name = v, value = local.env_values[v] }] }
  task_secret_refs = { for name, task in local.task_env : name => [for s in task.secrets : { name = s, valueFrom = aws_secretsmanager_secret.app[s].arn }] }

  container_port = 8080

  # The collector beside the api and the worker (an ADOT collector): it scrapes the task's own
  # METRICS_ADDR listener, which only a container of the task reaches (awsvpc tasks share
  # 127.0.0.1), and remote-writes to the Prometheus workspace that evaluates ops/alerts.yml
  # (alerts.tf), signing with the task role. JSON, which the collector reads as YAML.
  collector_config = { for task in ["api", "worker"] : task => jsonencode({
    extensions = {
      sigv4auth = { region = local.region, service = "aps" }
    }
    receivers = {
      prometheus = {
        config = {
          global = { scrape_interval = "30s", scrape_timeout = "10s" }
          scrape_configs = [{
            job_name       = "gpubroker-${task}"
            metrics_path   = "/metrics"
            static_configs = [{ targets = [var.metrics_addr] }]
          }]
        }
      }
    }
    processors = {
      memory_limiter = { check_interval = "1s", limit_mib = 200, spike_limit_mib = 50 }
      # Every task scrapes 127.0.0.1:9090, so the instance label would be the same in all of
      # them and two api tasks' counters would be written as one series: it becomes the task's
      # ARN (from the ECS task metadata endpoint).
      resourcedetection = { detectors = ["ecs"], timeout = "5s", override = false }
      "resource/instance" = {
        attributes = [{ key = "service.instance.id", from_attribute = "aws.ecs.task.arn", action = "upsert" }]
      }
      batch = {}
    }
    exporters = {
      prometheusremotewrite = {
        endpoint = "${aws_prometheus_workspace.main.prometheus_endpoint}api/v1/remote_write"
        auth     = { authenticator = "sigv4auth" }
      }
    }
    service = {
      extensions = ["sigv4auth"]
      pipelines = {
        metrics = {
          receivers  = ["prometheus"]
          processors = ["memory_limiter", "resourcedetection", "resource/instance", "batch"]
          exporters  = ["prometheusremotewrite"]
        }
      }
    }
  }) }

  # Not essential: a collector that stops loses metrics (and the alerts on them), never the
  # api or the worker.
  collector_container = { for task in ["api", "worker"] : task => {
    name        = "collector"
    image       = var.collector_image
    essential   = false
    memory      = 256
    environment = [{ name = "AOT_CONFIG_CONTENT", value = local.collector_config[task] }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.app[task].name
        awslogs-region        = local.region
        awslogs-stream-prefix = "collector"
      }
    }
  } }
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
  # The api calls no AWS service; its task role only lets the collector write metrics.
  task_role_arn = aws_iam_role.api.arn

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
    environment = local.task_environment.api
    secrets     = local.task_secret_refs.api
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.app["api"].name
        awslogs-region        = local.region
        awslogs-stream-prefix = "api"
      }
    }
  }, local.collector_container.api])
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
    environment = local.task_environment.worker
    secrets     = local.task_secret_refs.worker
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
  }, local.collector_container.worker])
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
    environment = local.task_environment.migrate
    secrets     = local.task_secret_refs.migrate
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
