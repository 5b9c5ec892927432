package s3pub

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"

	"gpubroker/offers"
)

const bucket = "gpubroker-offers"

type testBundle struct {
	client *s3.Client
	mu     sync.Mutex
	puts   []http.Header // headers of each PUT, as they reached the server
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	b := &testBundle{}
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket(bucket))
	fake := gofakes3.New(backend).Server()
	// gofakes3 v1.2.0 stores only Content-Type, Content-Disposition, Content-Encoding and
	// X-Amz-* headers with an object and drops Cache-Control, so the request headers are
	// recorded here to check that one.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			b.mu.Lock()
			b.puts = append(b.puts, r.Header.Clone())
			b.mu.Unlock()
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	b.client = s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
	return b
}

func TestPublishOffers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	p := New(b.client, bucket, Options{Prefix: "data/"})

	body, err := offers.Encode(offers.Feed{
		UpdatedAt: time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC),
		Offers:    []offers.Entry{{GPU: "a100", Region: "us-east", HourlyCents: 179, Available: true}},
	})
	require.NoError(t, err)
	require.NoError(t, p.Publish(ctx, offers.Name, body))

	obj, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("data/offers.json")})
	require.NoError(t, err)
	defer obj.Body.Close()
	got, err := io.ReadAll(obj.Body)
	require.NoError(t, err)
	require.Equal(t, body, got)
	require.Equal(t, "application/json", aws.ToString(obj.ContentType))

	require.Len(t, b.puts, 1)
	require.Equal(t, "max-age=60", b.puts[0].Get("Cache-Control"))
	require.Equal(t, "application/json", b.puts[0].Get("Content-Type"))

	// Publishing again replaces the object.
	require.NoError(t, p.Publish(ctx, offers.Name, []byte(`{"offers":[]}`)))
	obj2, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("data/offers.json")})
	require.NoError(t, err)
	defer obj2.Body.Close()
	got, err = io.ReadAll(obj2.Body)
	require.NoError(t, err)
	require.Equal(t, `{"offers":[]}`, string(got))
}

func TestPublishWithoutPrefixAndCustomCache(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := New(b.client, bucket, Options{CacheControl: "max-age=5"})
	require.Equal(t, "offers.json", p.Key(offers.Name))

	require.NoError(t, p.Publish(context.Background(), offers.Name, []byte(`{}`)))
	require.Equal(t, "max-age=5", b.puts[0].Get("Cache-Control"))
	_, err := b.client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("offers.json")})
	require.NoError(t, err)
}

func TestPublishMissingBucket(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := New(b.client, "no-such-bucket", Options{})

	err := p.Publish(context.Background(), offers.Name, []byte(`{}`))
	require.ErrorContains(t, err, "s3://no-such-bucket/offers.json")
}
