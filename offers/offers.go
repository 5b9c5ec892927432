// Package offers publishes the live GPU price feed (offers.json) that the site's price table
// reads from the CDN. The worker's refresh job builds a Feed from the providers' current offers
// and hands the encoded bytes to a Publisher; the edge caches the file for a minute, so prices
// on the page are at most about a minute stale and the API is never on the page's path.
package offers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Name is the file name of the feed; the site fetches it from /offers.json.
const Name = "offers.json"

// Publisher stores a named public file where the CDN serves it.
type Publisher interface {
	Publish(ctx context.Context, name string, body []byte) error
}

// Entry is the price of one GPU type in one region.
type Entry struct {
	GPU         string `json:"gpu"`
	Region      string `json:"region"`
	HourlyCents int64  `json:"hourly_cents"`
	Available   bool   `json:"available"`
}

// Feed is the content of offers.json.
type Feed struct {
	UpdatedAt time.Time `json:"updated_at"`
	Offers    []Entry   `json:"offers"`
}

// Encode returns the feed as JSON. Times are written in UTC (RFC 3339), and an empty list as []
// rather than null, so the page's script needs no special case.
func Encode(f Feed) ([]byte, error) {
	f.UpdatedAt = f.UpdatedAt.UTC()
	if f.Offers == nil {
		f.Offers = []Entry{}
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("error encoding offers feed: %w", err)
	}
	return b, nil
}
