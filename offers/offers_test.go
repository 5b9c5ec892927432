package offers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEncode(t *testing.T) {
	t.Parallel()

	at := time.Date(2026, 2, 3, 4, 5, 6, 0, time.FixedZone("CET", 3600))
	b, err := Encode(Feed{UpdatedAt: at, Offers: []Entry{
		{GPU: "a100", Region: "us-east", HourlyCents: 179, Available: true},
		{GPU: "h100", Region: "eu-central", HourlyCents: 319, Available: false},
	}})
	require.NoError(t, err)
	require.JSONEq(t, `{
		"updated_at": "2026-02-03T03:05:06Z",
		"offers": [
			{"gpu": "a100", "region": "us-east", "hourly_cents": 179, "available": true},
			{"gpu": "h100", "region": "eu-central", "hourly_cents": 319, "available": false}
		]
	}`, string(b))
}

func TestEncodeEmpty(t *testing.T) {
	t.Parallel()

	b, err := Encode(Feed{UpdatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	require.JSONEq(t, `{"updated_at":"2026-01-01T00:00:00Z","offers":[]}`, string(b))
}
