package billing_test

import (
	"bytes"
	"context"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/billing"
)

const stripeMockInstall = "go install github.com/stripe/stripe-mock@v0.203.0"

// findStripeMock looks in PATH, $GOBIN and $GOPATH/bin, where go install puts it.
func findStripeMock() string {
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "stripe-mock")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startStripeMock runs stripe-mock on free ports and returns its HTTP base URL.
func startStripeMock(t *testing.T) string {
	t.Helper()
	bin := findStripeMock()
	if bin == "" {
		if os.Getenv("GPUBROKER_SKIP_STRIPE_MOCK") == "1" {
			t.Skip("stripe-mock not installed and GPUBROKER_SKIP_STRIPE_MOCK=1")
		}
		t.Fatalf("stripe-mock is not installed (looked in PATH, $GOBIN and $(go env GOPATH)/bin). "+
			"Install it with `%s`, or set GPUBROKER_SKIP_STRIPE_MOCK=1 to skip this test.", stripeMockInstall)
	}
	httpPort, httpsPort := freePort(t), freePort(t)
	var out bytes.Buffer
	cmd := exec.Command(bin, "-http-port", fmt.Sprint(httpPort), "-https-port", fmt.Sprint(httpsPort))
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/payment_intents/pi_123", nil)
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("stripe-mock exited (%v):\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("stripe-mock did not answer on %s:\n%s", base, out.String())
		}
	}
}

// TestRequestShapesAgainstStripeMock sends every request billing.Client makes to stripe-mock,
// which validates them against Stripe's OpenAPI spec (unknown or mistyped parameters are
// refused). It answers fixtures, so only the absence of errors is asserted.
func TestRequestShapesAgainstStripeMock(t *testing.T) {
	t.Parallel()
	base := startStripeMock(t)
	c := billing.New(billing.Config{SecretKey: testKey, APIBase: base})
	ctx := context.Background()

	cs, err := c.CreateCheckout(ctx, checkoutParams("ord_mock"))
	require.NoError(t, err, "create checkout session")
	require.NotEmpty(t, cs.ID)

	_, err = c.GetCheckout(ctx, cs.ID)
	require.NoError(t, err, "get checkout session")

	_, err = c.ExpireCheckout(ctx, cs.ID)
	require.NoError(t, err, "expire checkout session")

	_, err = c.GetPaymentIntent(ctx, "pi_123")
	require.NoError(t, err, "get payment intent")

	_, err = c.Capture(ctx, "pi_123", "capture-ord_mock")
	require.NoError(t, err, "capture payment intent")

	_, err = c.Cancel(ctx, "pi_123", "abandoned", "release-ord_mock")
	require.NoError(t, err, "cancel payment intent")
	_, err = c.Cancel(ctx, "pi_123", "", "release-ord_mock-2")
	require.NoError(t, err, "cancel payment intent without reason")

	_, err = c.FindRefund(ctx, "pi_123", "refund-ord_mock")
	require.NoError(t, err, "list refunds")

	_, err = c.Refund(ctx, gpubroker.RefundParams{PaymentIntentID: "pi_123", Key: "refund-ord_mock", IdempotencyKey: "refund-ord_mock"})
	require.NoError(t, err, "refund")
}
