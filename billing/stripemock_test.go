package billing_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/billing"
)

// stripeMock returns the path of stripe-mock, a tool of tools/go.mod: `go tool -n` builds it
// into the Go build cache once (then finds it there) and prints its path without running it, so
// the test runs the binary itself and can stop it. Nothing to install by hand.
func stripeMock(t *testing.T) string {
	t.Helper()
	modfile, err := filepath.Abs(filepath.Join("..", "tools", "go.mod"))
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd := exec.Command("go", "tool", "-modfile="+modfile, "-n", "stripe-mock")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go tool -modfile=tools/go.mod -n stripe-mock: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
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
	bin := stripeMock(t)
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
