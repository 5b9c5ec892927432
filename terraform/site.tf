# The site: a private S3 bucket behind CloudFront (origin access control), with /api/* and /ops/*
# routed to the ALB, and /offers.json served from a second bucket the worker writes.
#
# offers.json has its own bucket rather than a key in the site bucket: `hugo deploy` deletes
# remote files that are not in the local build, so a shared bucket would lose the price feed
# on every deploy; and the worker's only S3 permission is then one key in a bucket that holds
# nothing else.

resource "aws_s3_bucket" "site" {
  bucket_prefix = "${var.name}-site-"
}

resource "aws_s3_bucket" "offers" {
  bucket_prefix = "${var.name}-offers-"
}

resource "aws_s3_bucket_ownership_controls" "site" {
  bucket = aws_s3_bucket.site.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_ownership_controls" "offers" {
  bucket = aws_s3_bucket.offers.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "site" {
  bucket = aws_s3_bucket.site.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_public_access_block" "offers" {
  bucket = aws_s3_bucket.offers.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "site" {
  bucket = aws_s3_bucket.site.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "offers" {
  bucket = aws_s3_bucket.offers.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# Only this distribution may read the buckets. On the site bucket CloudFront also gets
# ListBucket, so S3 answers 404 (not 403) for a missing page, which is what the 404 page maps.
data "aws_iam_policy_document" "site_bucket" {
  statement {
    sid       = "CloudFrontRead"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.site.arn}/*"]

    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.site.arn]
    }
  }

  # With ListBucket a missing page is a 404 from S3, not a 403, so the one error mapping below
  # is 404 → /404.html and the API's 403s (account_inactive, bad_origin) pass through intact.
  statement {
    sid       = "CloudFrontList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.site.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.site.arn]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.site.arn, "${aws_s3_bucket.site.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

data "aws_iam_policy_document" "offers_bucket" {
  statement {
    sid       = "CloudFrontRead"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.offers.arn}/offers.json"]

    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.site.arn]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.offers.arn, "${aws_s3_bucket.offers.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "site" {
  bucket = aws_s3_bucket.site.id
  policy = data.aws_iam_policy_document.site_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.site]
}

resource "aws_s3_bucket_policy" "offers" {
  bucket = aws_s3_bucket.offers.id
  policy = data.aws_iam_policy_document.offers_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.offers]
}

resource "aws_cloudfront_origin_access_control" "s3" {
  name                              = "${var.name}-s3"
  description                       = "CloudFront signs its requests to the site and offers buckets."
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

resource "aws_cloudfront_function" "index_html" {
  name    = "${var.name}-index-html"
  runtime = "cloudfront-js-2.0"
  comment = "Append index.html to directory URLs."
  publish = true
  code    = file("${path.module}/functions/index-html.js")
}

# Managed policies, looked up by name rather than pasted as ids.
data "aws_cloudfront_cache_policy" "caching_optimized" {
  name = "Managed-CachingOptimized"
}

data "aws_cloudfront_cache_policy" "caching_disabled" {
  name = "Managed-CachingDisabled"
}

data "aws_cloudfront_origin_request_policy" "all_viewer_except_host" {
  name = "Managed-AllViewerExceptHostHeader"
}

data "aws_cloudfront_response_headers_policy" "security_headers" {
  name = "Managed-SecurityHeadersPolicy"
}

locals {
  site_origin   = "site"
  offers_origin = "offers"
  api_origin    = "api"

  # The origin error codes CloudFront caches (it never caches 416, but takes a TTL for it).
  cached_error_codes = [400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504]
}

resource "aws_cloudfront_distribution" "site" {
  enabled             = true
  comment             = "${var.name}: site, /api/* and /ops/* to the ALB, /offers.json"
  aliases             = [var.domain]
  default_root_object = "index.html"
  http_version        = "http2and3"
  is_ipv6_enabled     = true
  price_class         = var.cloudfront_price_class

  origin {
    origin_id                = local.site_origin
    domain_name              = aws_s3_bucket.site.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.s3.id
  }

  origin {
    origin_id                = local.offers_origin
    domain_name              = aws_s3_bucket.offers.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.s3.id
  }

  origin {
    origin_id   = local.api_origin
    domain_name = var.api_origin_domain

    custom_origin_config {
      http_port                = 80
      https_port               = 443
      origin_protocol_policy   = "https-only"
      origin_ssl_protocols     = ["TLSv1.2"]
      origin_read_timeout      = 30
      origin_keepalive_timeout = 5
    }

    # Proves to the api that the request came through this distribution (app.tf); CloudFront
    # replaces any header of this name a viewer sends.
    custom_header {
      name  = "X-Origin-Secret"
      value = random_password.origin_secret.result
    }
  }

  # Static pages: cached at the edge for as long as the Cache-Control headers `hugo deploy` sets
  # allow (CachingOptimized honours them between 1 s and a year); every deploy invalidates /*.
  default_cache_behavior {
    target_origin_id           = local.site_origin
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = data.aws_cloudfront_cache_policy.caching_optimized.id
    response_headers_policy_id = data.aws_cloudfront_response_headers_policy.security_headers.id

    function_association {
      event_type   = "viewer-request"
      function_arn = aws_cloudfront_function.index_html.arn
    }
  }

  # The API: never cached, and everything the viewer sent (cookies, query, Stripe-Signature,
  # Origin) reaches the app, except Host, which must name the ALB's certificate.
  # https-only rather than a redirect: a redirected POST would lose its body.
  ordered_cache_behavior {
    path_pattern             = "/api/*"
    target_origin_id         = local.api_origin
    viewer_protocol_policy   = "https-only"
    allowed_methods          = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
    cached_methods           = ["GET", "HEAD"]
    compress                 = true
    cache_policy_id          = data.aws_cloudfront_cache_policy.caching_disabled.id
    origin_request_policy_id = data.aws_cloudfront_origin_request_policy.all_viewer_except_host.id
  }

  # The ops routes (funnel, River UI) behind the app's admin auth, like the API.
  ordered_cache_behavior {
    path_pattern             = "/ops/*"
    target_origin_id         = local.api_origin
    viewer_protocol_policy   = "https-only"
    allowed_methods          = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
    cached_methods           = ["GET", "HEAD"]
    compress                 = true
    cache_policy_id          = data.aws_cloudfront_cache_policy.caching_disabled.id
    origin_request_policy_id = data.aws_cloudfront_origin_request_policy.all_viewer_except_host.id
  }

  # The starter projects' tarballs, served by the api from the binary that launches the pods
  # (content-addressed names, Cache-Control immutable): no release order can leave a pod asking
  # for a tarball the bucket does not have.
  ordered_cache_behavior {
    path_pattern           = "/workspaces/*"
    target_origin_id       = local.api_origin
    viewer_protocol_policy = "redirect-to-https"
    allowed_methods        = ["GET", "HEAD"]
    cached_methods         = ["GET", "HEAD"]
    compress               = false # already gzip
    cache_policy_id        = data.aws_cloudfront_cache_policy.caching_optimized.id
  }

  # The bootstrap RunPod pods download at boot (images.StartScriptName, content-addressed,
  # checked against the SHA-256 of their launch), served by the api like the tarballs.
  ordered_cache_behavior {
    path_pattern           = "/boot/*"
    target_origin_id       = local.api_origin
    viewer_protocol_policy = "redirect-to-https"
    allowed_methods        = ["GET", "HEAD"]
    cached_methods         = ["GET", "HEAD"]
    compress               = true
    cache_policy_id        = data.aws_cloudfront_cache_policy.caching_optimized.id
  }

  # The live price feed: cached per its Cache-Control (max-age=60, set by the worker), so the
  # edge asks S3 about once a minute however many people look at the price table.
  ordered_cache_behavior {
    path_pattern           = "/offers.json"
    target_origin_id       = local.offers_origin
    viewer_protocol_policy = "redirect-to-https"
    allowed_methods        = ["GET", "HEAD"]
    cached_methods         = ["GET", "HEAD"]
    compress               = true
    cache_policy_id        = data.aws_cloudfront_cache_policy.caching_optimized.id
  }

  # CloudFront caches an origin's error answers to GET and HEAD (10 s unless told otherwise),
  # keyed like any other answer, and custom error responses belong to the distribution, not to
  # a behaviour: whatever is set here applies to /api/* and /ops/* too. An API error is one
  # person's answer at one moment (a pod or an order not there yet, a 503 while Postgres fails
  # over), never to be replayed to the next request, so every code CloudFront caches gets 0 s.
  # The site keeps its 404 page: a missing page is a 404 from S3 (CloudFront may list the
  # bucket). It also replaces the body of the API's 404s (their status stays), which is why
  # every client of the API branches on the status code; its 403s, 409s and 410s are untouched.
  dynamic "custom_error_response" {
    for_each = local.cached_error_codes
    content {
      error_code            = custom_error_response.value
      error_caching_min_ttl = 0
      response_code         = custom_error_response.value == 404 ? 404 : null
      response_page_path    = custom_error_response.value == 404 ? "/404.html" : null
    }
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    acm_certificate_arn      = var.cloudfront_certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }
}

resource "aws_route53_record" "site" {
  for_each = local.manage_dns ? toset(["A", "AAAA"]) : toset([])

  zone_id = var.route53_zone_id
  name    = var.domain
  type    = each.value

  alias {
    name                   = aws_cloudfront_distribution.site.domain_name
    zone_id                = aws_cloudfront_distribution.site.hosted_zone_id
    evaluate_target_health = false
  }
}
