package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
	"github.com/zclconf/go-cty/cty"

	"gpubroker/api"
	"gpubroker/billing/stripesim"
	"gpubroker/cmd/internal/gbproc"
	"gpubroker/cmd/internal/pgcluster"
	"gpubroker/feedback/sqsfake"
	"gpubroker/gpu/lambda"
	"gpubroker/gpu/runpod/runpodsim"
	"gpubroker/images"
	"gpubroker/internal/testdb"
	"gpubroker/mail/ses/sesfake"
	"gpubroker/terraform/terraformtest"
	"gpubroker/workspaces"
)

// terraformDir is the Terraform configuration the tasks are deployed with.
const terraformDir = "../../terraform"

// taskEnv is one task's entry in terraform/env.json: the names of the environment variables and
// of the secrets its container gets (app.tf builds the task definitions from them).
type taskEnv struct {
	Environment []string `json:"environment"`
	Secrets     []string `json:"secrets"`
}

// tfWorld is what the production processes meet when started as Terraform starts them: one
// database, and a local stand-in for every outside service they are pointed at through the
// base-URL overrides an ECS task does not have. Anything else they call leaves through the
// egress trap, an HTTP(S) proxy that refuses every request and remembers its host.
type tfWorld struct {
	t      *testing.T
	bin    string
	dbURL  string
	tasks  map[string]taskEnv
	tf     map[string]map[string]cty.Value // per task, the value Terraform gives each environment variable
	values map[string]string               // the test's values: secrets, and what Terraform only knows after apply
	extra  []string                        // the overrides pointing the outside services at the stand-ins
	dir    string

	mu      sync.Mutex
	trapped []string
	called  map[string]int // requests each stand-in answered
}

// newTFWorld builds the production binary (-tags nostandins, as the image) and starts the
// stand-ins.
func newTFWorld(t *testing.T) *tfWorld {
	t.Helper()
	w := &tfWorld{t: t, dir: t.TempDir()}
	w.bin = filepath.Join(w.dir, "gpubroker")
	out, err := exec.Command("go", "build", "-tags", "nostandins", "-o", w.bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	_, w.dbURL = testdb.NewWithURL(t)

	b, err := os.ReadFile(filepath.Join(terraformDir, "env.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &w.tasks))
	for _, task := range []string{"api", "worker", "migrate"} {
		require.Contains(t, w.tasks, task, "env.json lists every task")
	}

	// What ECS gives each task: its container's environment and secrets, as Terraform builds
	// them, which are env.json's names.
	mod, err := terraformtest.Load(terraformDir)
	require.NoError(t, err)
	ev, err := mod.Evaluate(terraformtest.ExampleInputs())
	require.NoError(t, err)
	w.tf = map[string]map[string]cty.Value{}
	for task, te := range w.tasks {
		c, err := ev.Container("aws_ecs_task_definition."+task, task)
		require.NoError(t, err)
		names, values, err := terraformtest.NameValues(c, "environment")
		require.NoError(t, err, task)
		require.Equal(t, te.Environment, names, "%s: the task definition's environment is env.json's", task)
		secrets, _, err := terraformtest.NameValues(c, "secrets")
		require.NoError(t, err, task)
		require.Equal(t, te.Secrets, secrets, "%s: the task definition's secrets are env.json's", task)
		w.tf[task] = values
	}

	// The stand-ins.
	w.called = map[string]int{}
	serve := func(name string, h http.Handler) string {
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w.mu.Lock()
			w.called[name]++
			w.mu.Unlock()
			h.ServeHTTP(rw, r)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	runpodKey := "rpa_" + rand.Text()
	stripe := stripesim.New(stripesim.Config{PublicURL: "https://gpubroker.example"})
	t.Cleanup(stripe.Close)
	s3 := s3mem.New()
	require.NoError(t, s3.CreateBucket("gpubroker-offers-test"))
	sqsURL := serve("sqs", &sqsfake.SQS{})
	trap := serve("trap", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.trapped = append(w.trapped, r.Host)
		w.mu.Unlock()
		http.Error(rw, "the test lets nothing out", http.StatusForbidden)
	}))
	w.extra = []string{
		"STRIPE_API_BASE=" + serve("stripe", stripe),
		"RUNPOD_API_BASE=" + serve("runpod", runpodsim.New(runpodsim.Options{APIKey: runpodKey})),
		"AWS_ENDPOINT_URL_SESV2=" + serve("ses", &sesfake.SES{}), "AWS_ENDPOINT_URL_SQS=" + sqsURL,
		"AWS_ENDPOINT_URL_S3=" + serve("s3", gofakes3.New(s3).Server()),
		// ECS gives the task role's credentials through its credentials endpoint.
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true",
		// Loopback (the stand-ins) is never proxied; everything else is refused.
		"HTTPS_PROXY=" + trap, "HTTP_PROXY=" + trap, "NO_PROXY=",
	}
	w.values = map[string]string{
		"DATABASE_URL":          w.dbURL,
		"STRIPE_SECRET_KEY":     "sk_live_" + rand.Text(), // as in production: a live key
		"STRIPE_WEBHOOK_SECRET": "whsec_" + rand.Text(),
		"ADMIN_PASSWORD":        rand.Text(),
		"ORIGIN_SECRET":         rand.Text() + rand.Text(), // random_password: 48 letters and digits
		"LAMBDA_API_KEY":        "secret_gpubroker_" + rand.Text(),
		"RUNPOD_API_KEY":        runpodKey,
		// Known to Terraform only after apply.
		"SES_CONFIGURATION_SET":  "gpubroker-transactional",
		"SQS_FEEDBACK_QUEUE_URL": sqsURL + "/123456789012/gpubroker-ses-feedback",
		"OFFERS_BUCKET":          "gpubroker-offers-test",
	}
	return w
}

// value is what task's name is set to: Terraform's own value where it knows it at plan, the
// test's otherwise (a secret, or a resource attribute known only after apply).
func (w *tfWorld) value(task, name string) string {
	w.t.Helper()
	if v, ok := w.tf[task][name]; ok && v != cty.NilVal && v.IsKnown() && !v.IsNull() {
		require.Equal(w.t, cty.String, v.Type(), "%s %s", task, name)
		_, ours := w.values[name]
		require.False(w.t, ours, "Terraform gives %s a value; the test must not override it", name)
		return v.AsString()
	}
	s, ok := w.values[name]
	require.True(w.t, ok, "Terraform knows %s only after apply (or it is a secret): give the test a value for it", name)
	return s
}

// env is exactly the names env.json gives task, with their values (ports moved to free ones,
// the host kept), and the stand-ins' overrides. ADDR is where the process listens.
func (w *tfWorld) env(task string) (env []string, port int, metricsAddr string) {
	w.t.Helper()
	te := w.tasks[task]
	for _, name := range slices.Concat(te.Environment, te.Secrets) {
		for _, o := range w.extra {
			require.False(w.t, strings.HasPrefix(o, name+"="), "env.json's %s is one the test overrides", name)
		}
		v := w.value(task, name)
		if name == "METRICS_ADDR" || name == "ADDR" {
			host, _, err := net.SplitHostPort(v)
			require.NoError(w.t, err, "%s=%s", name, v)
			p, err := pgcluster.FreePort()
			require.NoError(w.t, err)
			if host == "" {
				host = "127.0.0.1" // every interface in the task; this machine's loopback here
			}
			v = net.JoinHostPort(host, strconv.Itoa(p))
			if name == "ADDR" {
				port = p
			} else {
				metricsAddr = v
			}
		}
		env = append(env, name+"="+v)
	}
	if port == 0 {
		p, err := pgcluster.FreePort()
		require.NoError(w.t, err)
		port = p
	}
	return append(env, w.extra...), port, metricsAddr
}

// start runs task's mode as ECS would, and waits until /readyz answers 200 (with the origin
// secret header, which the api answers nothing without). Its /metrics on METRICS_ADDR, what the
// collector in the task scrapes, must answer too.
func (w *tfWorld) start(task string) (*gbproc.Proc, map[string]string) {
	w.t.Helper()
	// The ports are picked free and bound later by the process: another test running in
	// parallel can take one in between, so a start that lost its port is tried again on new ones.
	for attempt := 1; ; attempt++ {
		env, port, metricsAddr := w.env(task)
		vars := map[string]string{}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		p := &gbproc.Proc{Name: task, Mode: task, Bin: w.bin, LogPath: filepath.Join(w.dir, fmt.Sprintf("%s-%d.log", task, attempt)), Env: env, Port: port, Ready: "/readyz"}
		if s := vars["ORIGIN_SECRET"]; s != "" {
			p.Header = http.Header{api.OriginSecretHeader: {s}}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := p.Start(ctx)
		cancel()
		w.t.Cleanup(p.Stop)
		if err != nil && strings.Contains(err.Error(), "address already in use") && attempt < 3 {
			continue
		}
		require.NoError(w.t, err, "gpubroker %s with the environment Terraform gives it", task)
		if metricsAddr != "" {
			code, body := get(w.t, "http://"+metricsAddr+"/metrics")
			require.Equal(w.t, http.StatusOK, code, "%s: the collector's scrape", task)
			require.Contains(w.t, body, "gpubroker_pods", task)
		}
		return p, vars
	}
}

// Issue 21 item 2: every task starts with what Terraform gives it. The worker had no
// STRIPE_WEBHOOK_SECRET, so with a live key it fell back to whsec_dev, which configuration
// refused: exit 2, and no account, email, capture or pod ever happened. Each mode of the
// production build is started with exactly the names terraform/env.json lists (the file
// app.tf builds the task definitions from), Terraform's values where it knows them at plan, a
// live-looking Stripe key, and the outside services at local stand-ins: each passes its
// configuration and answers /readyz (migrate exits 0), with nothing outside reached but
// Lambda's API, which has no base-URL override and is refused without holding anything up.
func TestTerraformEnvironmentStartsEveryMode(t *testing.T) {
	t.Parallel()
	w := newTFWorld(t)
	env, _, _ := w.env("migrate")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := gbproc.Run(ctx, w.bin, "migrate", env)
	require.NoError(t, err, "gpubroker migrate with the environment Terraform gives it")
	w.start("api")
	w.start("worker")
	// The worker uses what Terraform configured: it read SES's sending quota while starting,
	// and polls the feedback queue, each at its stand-in.
	w.mu.Lock()
	require.Positive(t, w.called["ses"], "the worker asked SES for its quota (SES_FROM is set)")
	w.mu.Unlock()
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.called["sqs"] > 0 && w.called["runpod"] > 0
	}, 30*time.Second, 50*time.Millisecond, "the worker polls the feedback queue and lists RunPod's offers")

	lambdaAPI, err := url.Parse(lambda.DefaultBaseURL)
	require.NoError(t, err)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, host := range w.trapped {
		require.Equal(t, lambdaAPI.Host+":443", host, "only Lambda's API, which has no base-URL override, may be tried outside the test")
	}
	t.Logf("refused outside calls: %v", w.trapped)
}

// Issue 21 item 3: CloudFront sends /ops/* to the API's load balancer, so the River UI must be
// served by the api (it was mounted in the worker alone, which nothing routes to). The
// production api, started as Terraform starts it, serves River UI's page and its API to the
// ops credentials: it lists a job and cancels it through the insert-only River client, the
// action audited, behind the same guard as the console.
func TestRiverUIServedByTheAPI(t *testing.T) {
	t.Parallel()
	w := newTFWorld(t)
	_, vars := w.start("api")
	base := "http://" + vars["ADDR"]
	pool, err := pgxpool.New(context.Background(), w.dbURL)
	require.NoError(t, err)
	defer pool.Close()
	var jobID int64
	require.NoError(t, pool.QueryRow(context.Background(),
		`INSERT INTO river_job (kind, args, queue, max_attempts, state) VALUES ('refresh_offers', '{}', 'default', 3, 'available') RETURNING id`).Scan(&jobID))

	send := func(method, path, body string, creds bool) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set(api.OriginSecretHeader, vars["ORIGIN_SECRET"])
		if creds {
			req.SetBasicAuth(vars["ADMIN_USER"], vars["ADMIN_PASSWORD"])
		}
		if method != "GET" {
			req.Header.Set("Origin", vars["PUBLIC_URL"])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := send("GET", "/ops/riverui/", "", true)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "<html")
	code, _ = send("GET", "/ops/riverui/", "", false)
	require.Equal(t, http.StatusUnauthorized, code, "the River UI asks for the ops credentials")

	code, body = send("GET", "/ops/riverui/api/jobs?state=available", "", true)
	require.Equal(t, http.StatusOK, code, body)
	var list struct {
		Data []struct {
			ID   json.Number `json:"id"` // River UI sends int64s as strings
			Kind string      `json:"kind"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &list), body)
	require.Len(t, list.Data, 1, body)
	require.Equal(t, fmt.Sprint(jobID), list.Data[0].ID.String(), body)
	require.Equal(t, "refresh_offers", list.Data[0].Kind, body)

	code, body = send("POST", "/ops/riverui/api/jobs/cancel", fmt.Sprintf(`{"ids":["%d"]}`, jobID), true)
	require.Equal(t, http.StatusOK, code, body)
	var state string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT state FROM river_job WHERE id = $1`, jobID).Scan(&state))
	require.Equal(t, "cancelled", state)
	var audited int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*) FROM audit_events WHERE action = 'ops.riverui_action' AND detail->>'path' = '/ops/riverui/api/jobs/cancel'`).Scan(&audited))
	require.Equal(t, 1, audited)
}

// Issue 20.6: the tarball a launch names (PUBLIC_URL/workspaces/<template>-<sha12>.tar.gz) is
// served by the production api itself, byte for byte what its SHA-256 says, so no release order
// (a site deploy forgotten or late) leaves a pod without its starter project.
func TestWorkspacesServedByTheAPI(t *testing.T) {
	t.Parallel()
	w := newTFWorld(t)
	_, vars := w.start("api")
	for _, tpl := range []string{"data-science", "developer"} {
		ws, err := workspaces.For(tpl, vars["PUBLIC_URL"])
		require.NoError(t, err)
		u, err := url.Parse(ws.URL)
		require.NoError(t, err)
		req, err := http.NewRequest("GET", "http://"+vars["ADDR"]+u.Path, nil)
		require.NoError(t, err)
		req.Header.Set(api.OriginSecretHeader, vars["ORIGIN_SECRET"])
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", u.Path, body)
		sum := sha256.Sum256(body)
		require.Equal(t, ws.SHA256, hex.EncodeToString(sum[:]), tpl)
		require.Contains(t, resp.Header.Get("Cache-Control"), "immutable")
	}
}

// Issue 20.1: the bootstrap a RunPod pod downloads at boot (PUBLIC_URL/boot/<name>, named in
// its start command with its SHA-256) is served by the production api itself.
func TestBootstrapServedByTheAPI(t *testing.T) {
	t.Parallel()
	w := newTFWorld(t)
	_, vars := w.start("api")
	u, err := url.Parse(images.StartScriptURL(vars["PUBLIC_URL"]))
	require.NoError(t, err)
	req, err := http.NewRequest("GET", "http://"+vars["ADDR"]+u.Path, nil)
	require.NoError(t, err)
	req.Header.Set(api.OriginSecretHeader, vars["ORIGIN_SECRET"])
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", u.Path, body)
	sum := sha256.Sum256(body)
	require.Equal(t, images.StartScriptSHA256, hex.EncodeToString(sum[:]))
	require.Contains(t, resp.Header.Get("Cache-Control"), "immutable")
}
