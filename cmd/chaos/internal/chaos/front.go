package chaos

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"gpubroker/api"
	"gpubroker/billing/stripesim"
	"gpubroker/gpu/runpod/runpodsim"
	"gpubroker/mail/ses/sesfake"
	"gpubroker/workspaces"
)

// Paths the front serves besides the API.
const (
	stripePrefix = "/dev/stripe"
	runpodPrefix = "/runpod"
	// runpodProxyPrefix serves the pods' IDEs as RunPod's HTTPS proxy does (RUNPOD_PROXY_URL).
	runpodProxyPrefix = "/runpod-proxy"
	// sesPrefix is SES v2's endpoint (AWS_ENDPOINT_URL_SESV2): the workers send every email
	// through the real SDK to a fake that counts them.
	sesPrefix = "/ses"
)

// clientHeader carries the address a simulated customer comes from: the front puts it in
// X-Forwarded-For as CloudFront does, so per-client rate limits see fifty customers, not one.
const clientHeader = "X-Chaos-Client"

// front stands where CloudFront and the outside services stand in production, and outlives
// every gpubroker process of the run: /api/ goes to the api process, the starter projects are
// served from /workspaces/ like the CDN does, the Stripe stand-in answers under /dev/stripe
// (and sends its webhooks back through /api/), and RunPod's API is under /runpod.
type front struct {
	srv    *http.Server
	url    string
	stripe *stripesim.Server
	runpod *runpodsim.Server
	ses    *sesfake.SES // the counting sender: every email the workers send

	mu       sync.Mutex
	launches []*launchFault  // aimed at RunPod creates (aim.go)
	stalled  map[string]bool // instance names whose creates hang, creating nothing (aim.go)
}

// newFront serves on ln, sending /api/ to the api process at apiAddr (host:port; it is
// never restarted, unlike the workers) with originSecret, as CloudFront sends its origin
// custom header.
func newFront(ln net.Listener, apiAddr, webhookSecret, runpodKey, originSecret string, images []string, holdLifetime time.Duration, kill func(), log *slog.Logger) *front {
	f := &front{url: "http://" + ln.Addr().String(), ses: &sesfake.SES{}}
	apiURL := &url.URL{Scheme: "http", Host: apiAddr}
	f.stripe = stripesim.New(stripesim.Config{
		Prefix: stripePrefix, PublicURL: f.url, WebhookURL: f.url + "/api/stripe/webhook", WebhookSecret: webhookSecret, Logger: log,
	})
	f.runpod = runpodsim.New(runpodsim.Options{APIKey: runpodKey, BootDelay: bootDelay})
	mux := http.NewServeMux()
	mux.Handle(stripePrefix+"/", f.stripe)
	f.stripe.SetHoldLifetime(holdLifetime)
	mux.Handle(runpodPrefix+"/", f.runpodAPI(kill))
	mux.Handle(sesPrefix+"/", http.StripPrefix(sesPrefix, f.ses))
	mux.Handle(runpodProxyPrefix+"/", f.runpod.Proxy(runpodProxyPrefix))
	mux.Handle(workspaces.URLPrefix, workspaces.Handler())
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(apiURL)
			r.Out.Host = r.In.Host
			r.Out.Header.Set(api.OriginSecretHeader, originSecret)
			r.Out.Header.Del("X-Forwarded-For")
			if c := r.In.Header.Get(clientHeader); c != "" {
				r.Out.Header.Set("X-Forwarded-For", c)
			} else {
				r.Out.Header.Set("X-Forwarded-For", "127.0.0.1")
			}
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	mux.Handle("/api/", proxy)
	f.srv = &http.Server{Handler: mux}
	go func() { _ = f.srv.Serve(ln) }()
	return f
}

func (f *front) close() {
	_ = f.srv.Close()
	f.stripe.Close()
}
