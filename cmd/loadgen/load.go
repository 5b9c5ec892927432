package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gpubroker/cmd/internal/pgcluster"
)

// result is one measurement: one row of the table.
type result struct {
	what          string // "raw" (pgbench) or "api"
	senders       int
	events        int
	errors        int
	elapsed       time.Duration
	lat           []time.Duration // sorted
	apiCPU, pgCPU time.Duration
	ratio         float64 // events/s over raw's in the same round
}

func (r *result) rate() float64 { return float64(r.events) / r.elapsed.Seconds() }

func (r *result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat)) * p)
	if i >= len(r.lat) {
		i = len(r.lat) - 1
	}
	return r.lat[i]
}

func perEvent(cpu time.Duration, n int) float64 {
	if n == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(n)
}

// sender posts signed events over one keep-alive connection, a share of them redeliveries of
// events it sent before (re-signed with a fresh timestamp, as Stripe does).
type load struct {
	url       string
	secret    []byte
	header    http.Header // added to every request (the origin secret)
	tmpl      *template
	run       string // prefix making this run's event ids unique
	next      atomic.Uint64
	dupShare  float64
	maxEvents int
}

func (l *load) measure(ctx context.Context, senders int, d time.Duration) *result {
	tr := &http.Transport{MaxIdleConnsPerHost: senders, MaxConnsPerHost: senders, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu     sync.Mutex
		all    []time.Duration
		errs   int
		budget atomic.Int64
		wg     sync.WaitGroup
	)
	budget.Store(int64(l.maxEvents))
	start := time.Now()
	for s := range senders {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(s), uint64(start.UnixNano())))
			body := slices.Clone(l.tmpl.body)
			var sent []uint64
			var lat []time.Duration
			bad := 0
			for ctx.Err() == nil && budget.Add(-1) >= 0 {
				var n uint64
				if len(sent) > 0 && rng.Float64() < l.dupShare {
					n = sent[rng.IntN(len(sent))]
				} else {
					n = l.next.Add(1)
					sent = append(sent, n)
				}
				l.tmpl.fill(body, l.run, n)
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json; charset=utf-8")
				req.Header.Set("Stripe-Signature", sign(l.secret, t0, body))
				for k, v := range l.header {
					req.Header[k] = v
				}
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						bad++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					bad++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(all)
	return &result{what: "api", senders: senders, events: len(all), errors: errs, elapsed: time.Since(start), lat: all}
}

// pgbenchScript is the raw transaction: the floor the API is compared against. It stores an
// event row like the API's (same table, same 2.5 KB payload sent as a parameter) and a
// river_job row naming it, in one transaction, i.e. one durable commit per event.
const pgbenchScript = `BEGIN;
INSERT INTO stripe_events (id, type, object_id, order_id, payload)
  VALUES ('evt_raw_' || gen_random_uuid(), 'checkout.session.completed', 'cs_raw', NULL, :payload) RETURNING id AS ev \gset
INSERT INTO river_job (args, kind, max_attempts, queue, state, priority)
  VALUES (jsonb_build_object('event_id', :ev::text), 'stripe_event', 25, 'default', 'available', 1);
END;
`

var tpsRe = regexp.MustCompile(`number of transactions actually processed: (\d+)`)

// pgbench runs the raw transaction with clients connections for d and reads the per
// transaction log for latencies.
func pgbench(ctx context.Context, c *pgcluster.Cluster, dir string, payload []byte, clients int, d time.Duration) (*result, error) {
	script := filepath.Join(dir, "raw.sql")
	if err := os.WriteFile(script, []byte(pgbenchScript), 0o644); err != nil {
		return nil, err
	}
	logDir, err := os.MkdirTemp(dir, "pgbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(logDir)
	threads := min(clients, 2)
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, filepath.Join(c.Bin, "pgbench"), "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "postgres",
		"-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(threads), "-T", strconv.Itoa(secs),
		"-f", script, "-D", "payload="+string(payload), "-l", "--log-prefix="+filepath.Join(logDir, "tx"), "gpubroker")
	cmd.Dir = logDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	m := tpsRe.FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("pgbench: no transaction count in its output:\n%s", out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	r := &result{what: "raw", senders: clients, events: n, elapsed: time.Duration(secs) * time.Second}
	logs, _ := filepath.Glob(filepath.Join(logDir, "tx*"))
	for _, name := range logs {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// client_id transaction_no time_us script_no epoch epoch_us
			fs := strings.Fields(sc.Text())
			if len(fs) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fs[2], 10, 64)
			if err == nil {
				r.lat = append(r.lat, time.Duration(us)*time.Microsecond)
			}
		}
		f.Close()
	}
	slices.Sort(r.lat)
	return r, nil
}
