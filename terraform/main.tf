# GPU Broker on AWS: a CloudFront distribution in front of the Hugo site (S3) and the API (ALB →
# ECS Fargate), a worker service, RDS Postgres, SES with bounce/complaint feedback through
# SNS → SQS, and the secrets and IAM roles they need. See README.md for the apply steps.

terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
    # The origin secret CloudFront sends the API (app.tf).
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # The state holds the database password (it is composed into DATABASE_URL), so it lives in an
  # encrypted bucket, never on a laptop. Configured at init time:
  #   terraform init -backend-config="bucket=…" -backend-config="key=gpubroker/terraform.tfstate" \
  #     -backend-config="region=…" -backend-config="encrypt=true" -backend-config="use_lockfile=true"
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project   = var.name
      ManagedBy = "terraform"
    }
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

data "aws_availability_zones" "available" {
  state = "available"
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  ses_domain = coalesce(var.ses_domain, var.domain)
  ses_from   = coalesce(var.ses_from, "GPU Broker <no-reply@${local.ses_domain}>")
  public_url = "https://${var.domain}"

  # Two zones: RDS needs subnets in two, and one zone going away leaves the API up.
  azs = slice(data.aws_availability_zones.available.names, 0, 2)

  manage_dns = var.route53_zone_id != ""
}

# Network: public subnets hold the ALB and the NAT gateway; tasks and the database sit in private
# subnets. Tasks reach Stripe, the GPU providers and AWS APIs through the NAT gateway.

resource "aws_vpc" "main" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = var.name }
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id

  tags = { Name = var.name }
}

resource "aws_subnet" "public" {
  count = length(local.azs)

  vpc_id            = aws_vpc.main.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, count.index)

  tags = { Name = "${var.name}-public-${local.azs[count.index]}" }
}

resource "aws_subnet" "private" {
  count = length(local.azs)

  vpc_id            = aws_vpc.main.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 10 + count.index)

  tags = { Name = "${var.name}-private-${local.azs[count.index]}" }
}

resource "aws_eip" "nat" {
  domain = "vpc"

  tags = { Name = "${var.name}-nat" }
}

# One NAT gateway keeps the bill small; losing its zone stops outbound calls (jobs retry) but
# not the site, which CloudFront serves from S3.
resource "aws_nat_gateway" "main" {
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.public[0].id

  tags = { Name = var.name }

  depends_on = [aws_internet_gateway.main]
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main.id
  }

  tags = { Name = "${var.name}-public" }
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.main.id

  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.main.id
  }

  tags = { Name = "${var.name}-private" }
}

resource "aws_route_table_association" "public" {
  count = length(aws_subnet.public)

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table_association" "private" {
  count = length(aws_subnet.private)

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}
