package jobs

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker/gpu"
	"gpubroker/offers"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// RefreshOffersArgs is tasks.RefreshOffersArgs: the workers' name for it.
type RefreshOffersArgs = tasks.RefreshOffersArgs

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
