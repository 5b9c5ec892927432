package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker/gpu"
)

// SaveOffers stores the providers' latest offers, in one transaction.
func SaveOffers(ctx context.Context, tx pgx.Tx, offers []gpu.Offer, now time.Time) error {
	for _, o := range offers {
		if _, err := tx.Exec(ctx, `INSERT INTO offers (provider, offer_id, gpu, region, cents_per_hour, available, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (provider, offer_id) DO UPDATE
			SET gpu = EXCLUDED.gpu, region = EXCLUDED.region, cents_per_hour = EXCLUDED.cents_per_hour,
			    available = EXCLUDED.available, updated_at = EXCLUDED.updated_at`,
			o.Provider, o.ID, o.GPU, o.Region, o.CentsPerHour, o.Available, now); err != nil {
			return err
		}
	}
	return nil
}
