// Package s3pub implements offers.Publisher with Amazon S3: each published file becomes an
// object in the offers bucket, which CloudFront serves at the site's root (/offers.json; see
// terraform/site.tf).
package s3pub

import (
	"bytes"
	"context"
	"fmt"
	"path"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"gpubroker/offers"
)

// DefaultCacheControl lets browsers and CloudFront keep a published file for a minute: prices
// may be a minute stale, and in exchange every page view is served from the edge, not from S3.
const DefaultCacheControl = "max-age=60"

// Options configures a Publisher.
type Options struct {
	// Prefix is prepended to names to form object keys. The Terraform deployment uses none:
	// the key is offers.json, served at /offers.json. A prefix must match the CloudFront path
	// pattern routed to the bucket and the worker's s3:PutObject resource.
	Prefix string
	// CacheControl is the Cache-Control header stored with each object. Empty means
	// DefaultCacheControl.
	CacheControl string
}

// Publisher writes JSON files to one S3 bucket.
type Publisher struct {
	client *s3.Client
	bucket string
	opts   Options
}

var _ offers.Publisher = (*Publisher)(nil)

// New returns a Publisher writing to bucket with client.
func New(client *s3.Client, bucket string, opts Options) *Publisher {
	if opts.CacheControl == "" {
		opts.CacheControl = DefaultCacheControl
	}
	return &Publisher{client: client, bucket: bucket, opts: opts}
}

// Key returns the object key a name is published under.
func (p *Publisher) Key(name string) string {
	return path.Join(p.opts.Prefix, name)
}

// Publish writes body as the object for name, replacing the previous version in one PUT (S3
// object writes are atomic, so readers see the old file or the new one, never half of one).
func (p *Publisher) Publish(ctx context.Context, name string, body []byte) error {
	key := p.Key(name)
	_, err := p.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(p.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
		CacheControl:  aws.String(p.opts.CacheControl),
	})
	if err != nil {
		return fmt.Errorf("error publishing s3://%s/%s: %w", p.bucket, key, err)
	}
	return nil
}
