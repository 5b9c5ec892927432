package main

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every metric the alerts and the Grafana dashboard read is one the processes export: a
// renamed metric would otherwise silence its alert without anyone noticing.
func TestAlertsAndDashboardReadExportedMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{env: metricsEnv})
	exported := e.scrape()

	alerts, err := os.ReadFile("../../ops/alerts.yml")
	require.NoError(t, err)
	dash, err := os.ReadFile("../../ops/dashboard.json")
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(dash, &d), "dashboard.json is JSON")
	require.NotEmpty(t, d.Panels)

	name := regexp.MustCompile(`gpubroker_[a-z0-9_]+`)
	alerted := name.FindAllString(string(alerts), -1)
	paneled := map[string]bool{}
	for _, p := range d.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, q := range p.Targets {
			for _, m := range name.FindAllString(q.Expr, -1) {
				paneled[m] = true
			}
		}
	}
	require.NotEmpty(t, alerted)
	for _, m := range append(alerted, slices.Collect(maps.Keys(paneled))...) {
		require.Contains(t, exported, "# TYPE "+m+" ", "%s is read by ops/ but not exported", m)
	}
	// Every metric an alert reads has a panel, so whoever is paged can see its history.
	for _, m := range alerted {
		require.True(t, paneled[m], "%s is alerted on but has no dashboard panel", m)
	}

	// Each alert links to the page where a person sees the problem: the console (at an anchor
	// that exists) or, for jobs, the River UI; not JSON or a health check.
	code, console := e.opsGet("/ops/")
	require.Equal(t, http.StatusOK, code)
	runbooks := regexp.MustCompile(`runbook: "([^"]*)"`).FindAllStringSubmatch(string(alerts), -1)
	require.NotEmpty(t, runbooks)
	for _, rb := range runbooks {
		link := rb[1]
		if strings.HasPrefix(link, "OPS_URL/ops/riverui/") {
			continue
		}
		anchor, ok := strings.CutPrefix(link, "OPS_URL/ops/#")
		require.True(t, ok, "runbook %s is neither the console nor the River UI", link)
		require.Contains(t, string(console), `id="`+anchor+`"`, "runbook %s: no such place on /ops/", link)
	}
}

// collect runs a collection of the ops numbers now, as OPS_COLLECT_INTERVAL would: /metrics,
// /ops/funnel and the console serve the last one's.
func (e *env) collect() {
	e.t.Helper()
	require.NoError(e.t, e.m.OpsView.Collect(context.Background()))
}
