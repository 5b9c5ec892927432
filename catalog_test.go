package gpubroker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/site"
)

func TestQuotePricesFromTheCatalog(t *testing.T) {
	cat, err := site.Catalog()
	require.NoError(t, err)
	q, err := cat.Quote(gpubroker.OrderRequest{Email: " Ada@Example.COM ", Name: " Ada ", Plan: "pro", Template: "developer", GPU: "h100", Region: "us-west", Hours: 10})
	require.NoError(t, err)
	require.Equal(t, "ada@example.com", q.Request.Email)
	require.Equal(t, int64(4900+10*289), q.AmountCents)
	var sum int64
	for _, li := range q.LineItems {
		sum += li.UnitAmountCent * li.Quantity
	}
	require.Equal(t, q.AmountCents, sum, "line items add up to the amount charged")

	free, err := cat.Quote(gpubroker.OrderRequest{Email: "a@example.com", Name: "A", Plan: "free", Template: "data-science", GPU: "rtx4090", Region: "eu-central", Hours: 1})
	require.NoError(t, err)
	require.Zero(t, free.AmountCents)
	require.Empty(t, free.LineItems)
}

func TestQuoteFieldErrors(t *testing.T) {
	cat, err := site.Catalog()
	require.NoError(t, err)
	_, err = cat.Quote(gpubroker.OrderRequest{Email: "Ada <ada@example.com>", Plan: "pro", Template: "x", GPU: "h100", Region: "mars", Hours: -1})
	var e *gpubroker.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, gpubroker.EINVALID, e.Code)
	for _, f := range []string{"email", "name", "template", "region", "hours"} {
		require.Contains(t, e.Fields, f)
	}
}

func TestCatalogIsConsistent(t *testing.T) {
	cat, err := site.Catalog()
	require.NoError(t, err)
	for _, p := range cat.Plans {
		for _, g := range p.GPUClasses {
			_, ok := cat.GPUType(g)
			require.True(t, ok, "plan %s names unknown GPU %s", p.ID, g)
		}
	}
	for _, g := range cat.GPUs {
		require.NotEmpty(t, g.Regions, g.GPU)
		for _, r := range g.Regions {
			require.Positive(t, r.HourlyCents, g.GPU)
			_, ok := cat.Region(r.Region)
			require.True(t, ok, "region %s of %s has no name in site/data/regions.json", r.Region, g.GPU)
		}
	}
	for _, tpl := range cat.Templates {
		require.Contains(t, []string{"jupyter", "code-server"}, tpl.IDE, tpl.ID)
	}
}

// Issue 15.5 and 15.7: the Stripe line items say what the fee buys and where the GPU runs, in
// the words the site uses (not "us-west").
func TestQuoteLineItemsSpeakPlainly(t *testing.T) {
	cat, err := site.Catalog()
	require.NoError(t, err)
	q, err := cat.Quote(gpubroker.OrderRequest{Email: "ada@example.com", Name: "Ada", Plan: "pro", Template: "developer", GPU: "a100", Region: "us-west", Hours: 10})
	require.NoError(t, err)
	require.Equal(t, []gpubroker.LineItem{
		{Name: "Pro plan (30 days)", UnitAmountCent: 4900, Quantity: 1},
		{Name: "NVIDIA A100 80GB in US West (per hour)", UnitAmountCent: 169, Quantity: 10},
	}, q.LineItems)
	require.Equal(t, "US West", cat.RegionName("us-west"))
	require.Equal(t, "mars", cat.RegionName("mars"), "an unknown id is shown as it is")
}

// The site states each plan fee's period from plans.json; it must be the period the API
// enforces (PlanFeePeriod).
func TestCatalogStatesThePlanFeePeriod(t *testing.T) {
	cat, err := site.Catalog()
	require.NoError(t, err)
	for _, p := range cat.Plans {
		if p.FeeCents > 0 {
			require.Equal(t, int(gpubroker.PlanFeePeriod/(24*time.Hour)), p.FeePeriodDays, p.ID)
		}
	}
}
