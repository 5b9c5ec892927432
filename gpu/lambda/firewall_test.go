package lambda_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
	"gpubroker/gpu/lambda/lambdafake"
)

// The account's rules let in SSH, 80 and 443 after OpenFirewall, every rule that was there
// is kept, and a second run (or a rule that already allows a port) writes nothing.
func TestOpenFirewall(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	c := newClient(srv)
	ctx := context.Background()
	theirs := []lambdafake.Rule{
		{Protocol: "tcp", PortRange: []int{8888, 8888}, SourceNetwork: "203.0.113.0/24", Description: "ops: notebook from the office"},
		{Protocol: "tcp", PortRange: []int{22, 22}, SourceNetwork: "198.51.100.4/32", Description: "ops: SSH from the bastion only"},
		{Protocol: "icmp", SourceNetwork: "0.0.0.0/0", Description: "ping"},
	}
	f.firewall.SetRules(theirs)

	added, err := c.OpenFirewall(ctx)
	require.NoError(t, err)
	require.Len(t, added, 3, "SSH from one address does not let customers in")
	got := f.firewall.Rules()
	require.Equal(t, theirs, got[:3], "every rule that was there, as it was")
	require.Equal(t, []lambdafake.Rule{
		{Protocol: "tcp", PortRange: []int{22, 22}, SourceNetwork: "0.0.0.0/0", Description: "gpubroker: SSH"},
		{Protocol: "tcp", PortRange: []int{80, 80}, SourceNetwork: "0.0.0.0/0", Description: "gpubroker: ACME HTTP-01 and redirect to HTTPS"},
		{Protocol: "tcp", PortRange: []int{443, 443}, SourceNetwork: "0.0.0.0/0", Description: "gpubroker: HTTPS (code-server behind Caddy)"},
	}, got[3:])
	require.Equal(t, 1, f.firewall.Puts())

	added, err = c.OpenFirewall(ctx)
	require.NoError(t, err)
	require.Empty(t, added)
	require.Equal(t, 1, f.firewall.Puts(), "nothing missing, nothing written")

	// Ops' wider rules already allow what we need: nothing to add.
	f.firewall.SetRules([]lambdafake.Rule{
		{Protocol: "all", PortRange: []int{1, 1024}, SourceNetwork: "0.0.0.0/0", Description: "ops: low ports"},
	})
	added, err = c.OpenFirewall(ctx)
	require.NoError(t, err)
	require.Empty(t, added)
	require.Equal(t, 1, f.firewall.Puts())

	// Lambda's failures are the gpu classes: a retry later may work.
	f.firewall.FailNext(http.StatusInternalServerError, 1)
	_, err = c.OpenFirewall(ctx)
	require.ErrorIs(t, err, gpu.ErrUnavailable)
	require.ErrorContains(t, err, "read firewall rules")
}

// The fake refuses what Lambda's spec refuses (400 global/invalid-parameters), so a client
// that sent such a rule would fail its tests.
func TestFakeFirewallRefusesInvalidRules(t *testing.T) {
	t.Parallel()
	f := &lambdafake.Firewall{APIKey: apiKey}
	for name, body := range map[string]string{
		"no data":            `{}`,
		"reversed range":     `{"data":[{"protocol":"tcp","port_range":[443,80],"source_network":"0.0.0.0/0","description":"x"}]}`,
		"port 0":             `{"data":[{"protocol":"tcp","port_range":[0,22],"source_network":"0.0.0.0/0","description":"x"}]}`,
		"port over 65535":    `{"data":[{"protocol":"udp","port_range":[1,70000],"source_network":"0.0.0.0/0","description":"x"}]}`,
		"tcp without ports":  `{"data":[{"protocol":"tcp","source_network":"0.0.0.0/0","description":"x"}]}`,
		"icmp with ports":    `{"data":[{"protocol":"icmp","port_range":[1,2],"source_network":"0.0.0.0/0","description":"x"}]}`,
		"unknown protocol":   `{"data":[{"protocol":"sctp","port_range":[1,2],"source_network":"0.0.0.0/0","description":"x"}]}`,
		"IPv6 source":        `{"data":[{"protocol":"tcp","port_range":[22,22],"source_network":"::/0","description":"x"}]}`,
		"no description":     `{"data":[{"protocol":"tcp","port_range":[22,22],"source_network":"0.0.0.0/0"}]}`,
		"long description":   `{"data":[{"protocol":"tcp","port_range":[22,22],"source_network":"0.0.0.0/0","description":"` + strings.Repeat("x", 129) + `"}]}`,
		"three port numbers": `{"data":[{"protocol":"tcp","port_range":[22,22,22],"source_network":"0.0.0.0/0","description":"x"}]}`,
	} {
		req, err := http.NewRequest(http.MethodPut, "/api/v1/firewall-rules", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		rec := httptest.NewRecorder()
		f.ServeHTTP(rec, req)
		require.Equal(t, http.StatusBadRequest, rec.Code, name)
		require.Contains(t, rec.Body.String(), "global/invalid-parameters", name)
	}
	require.Zero(t, f.Puts())
	require.Empty(t, f.Rules())
}
