package gpubroker_test

import (
	"testing"

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
		}
	}
	for _, tpl := range cat.Templates {
		require.Contains(t, []string{"jupyter", "code-server"}, tpl.IDE, tpl.ID)
	}
}
