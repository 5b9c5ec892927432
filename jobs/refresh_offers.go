package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker/gpu"
	"gpubroker/offers"
	"gpubroker/postgres"
)

// RefreshOffersArgs refreshes provider offers and republishes offers.json.
type RefreshOffersArgs struct{}

// Kind implements river.JobArgs.
func (RefreshOffersArgs) Kind() string { return "refresh_offers" }

// InsertOpts makes it unique per 5-minute period, so several leaders or restarts run it once.
func (RefreshOffersArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: 5 * time.Minute}, MaxAttempts: 3}
}

// RefreshOffersWorker stores every provider's offers and publishes the feed.
type RefreshOffersWorker struct {
	river.WorkerDefaults[RefreshOffersArgs]
	d *Deps
}

// Work implements river.Worker.
func (w *RefreshOffersWorker) Work(ctx context.Context, job *river.Job[RefreshOffersArgs]) error {
	d := w.d
	all, err := d.Broker.Offers(ctx, gpu.OfferQuery{})
	if err != nil {
		return err
	}
	now := d.now()
	err = postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error { return postgres.SaveOffers(ctx, tx, all, now) })
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, o := range all {
		if o.Available {
			live[o.GPU+"/"+o.Region] = true
		}
	}
	// The feed's price is our catalog's selling price (what the API charges), so the page never
	// shows a price we would not honour; availability is live.
	feed := offers.Feed{UpdatedAt: now}
	for _, g := range d.Catalog.GPUs {
		for _, r := range g.Regions {
			feed.Offers = append(feed.Offers, offers.Entry{GPU: g.GPU, Region: r.Region, HourlyCents: r.HourlyCents, Available: r.Available && live[g.GPU+"/"+r.Region]})
		}
	}
	body, err := offers.Encode(feed)
	if err != nil {
		return err
	}
	if d.OnOffers != nil {
		d.OnOffers(body)
	}
	if d.Publisher != nil {
		if err := d.Publisher.Publish(ctx, offers.Name, body); err != nil {
			return err
		}
	}
	d.Logger.InfoContext(ctx, "offers refreshed", "offers", len(all))
	return nil
}
