package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every metric the alerts and the Grafana dashboard read is one the processes export: a
// renamed metric would otherwise silence its alert without anyone noticing.
func TestAlertsAndDashboardReadExportedMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	resp, err := http.Get(e.url + "/metrics")
	require.NoError(t, err)
	exported, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

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
	used := name.FindAllString(string(alerts), -1)
	for _, p := range d.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, q := range p.Targets {
			used = append(used, name.FindAllString(q.Expr, -1)...)
		}
	}
	require.NotEmpty(t, used)
	for _, m := range used {
		require.Contains(t, string(exported), "# TYPE "+m+" ", "%s is read by ops/ but not exported", m)
	}
}
