package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Issue 25 item 5: an extension's Stripe line item names the GPU and reads as what one unit
// is (one more hour of it), its quantity the hours bought and its unit amount the hourly rate,
// not "2 more GPU hours (per hour)" × 2.
func TestExtensionLineItemNamesTheGPU(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	p := ts.paidPod("ext-line@example.com", 3, 10*time.Minute)
	for _, hours := range []int{1, 2} {
		code, x := ts.call("POST", "/api/pods/"+p.id+"/extend", map[string]any{"hours": hours}, p.session)
		require.Equal(t, http.StatusCreated, code, x)
		var sid string
		require.NoError(t, ts.pool.QueryRow(context.Background(), `SELECT stripe_session_id FROM extensions WHERE id = $1`, x["extension_id"]).Scan(&sid))
		sess := ts.stripes.Session(sid)
		require.NotNil(t, sess, x)
		require.Len(t, sess.LineItems, 1)
		li := sess.LineItems[0]
		require.Equal(t, "NVIDIA A100 80GB: 1 more hour", li.Name, "the catalog's display name")
		require.EqualValues(t, hours, li.Quantity)
		require.EqualValues(t, 179, li.UnitAmount)
		require.EqualValues(t, hours*179, x["amount_cents"])
	}
}
