package api

import (
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"gpubroker"
	"gpubroker/postgres"
)

// The ops console: server-rendered HTML behind admin auth, no JavaScript. /ops/ shows the
// funnel for a window, rates, provisioning times, refunds, holds about to lapse, pods by
// status and provider and the jobs that need a look; /ops/orders finds an order and
// /ops/orders/{id} tells its whole story. Every page an operator opens is audited.

//go:embed templates/console*.html
var consoleFiles embed.FS

var consolePages = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"day":  func(t time.Time) string { return t.UTC().Format("Mon 2 Jan") },
		"secs": func(s float64) string { return (time.Duration(s) * time.Second).Round(time.Second).String() },
		"barSecs": func(s float64) int {
			return min(int(s/6), 400) // 1 px per 6 s, up to 40 minutes
		},
		"pct": func(n, of int64) int64 {
			if of == 0 {
				return 0
			}
			return n * 100 / of
		},
		"mul100": func(f float64) float64 { return f * 100 },
		"money":  func(c int64) string { return fmt.Sprintf("$%d.%02d", c/100, c%100) },
	}
	base := template.Must(template.New("").Funcs(funcs).ParseFS(consoleFiles, "templates/console*.html"))
	pages := map[string]*template.Template{}
	for _, name := range []string{"console", "orders", "order"} {
		t := template.Must(base.Clone())
		template.Must(t.New("content").Parse(`{{template "` + name + `-content" .}}`))
		pages[name] = t
	}
	return pages
}()

// consoleWindows are the windows the front page offers.
var consoleWindows = map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

func (s *Server) renderConsole(w http.ResponseWriter, r *http.Request, page string, data map[string]any) {
	data["Query"] = r.URL.Query().Get("q")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	if err := consolePages[page].ExecuteTemplate(w, "layout", data); err != nil {
		logger(r).ErrorContext(r.Context(), "error rendering the ops console", "page", page, "error", err)
	}
}

// auditView records which operator looked at what.
func (s *Server) auditView(r *http.Request, action, orderID string, detail map[string]any) {
	user, _, _ := r.BasicAuth()
	if detail == nil {
		detail = map[string]any{}
	}
	detail["actor"] = "admin:" + user
	if err := postgres.Audit(r.Context(), s.Pool, postgres.AuditEvent{OrderID: orderID, Action: gpubroker.AuditAction(action), Detail: detail}); err != nil {
		logger(r).ErrorContext(r.Context(), "error auditing an ops view", "action", action, "error", err)
	}
}

func (s *Server) handleConsole(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	window := r.URL.Query().Get("window")
	d, ok := consoleWindows[window]
	if !ok {
		window, d = "24h", consoleWindows["24h"]
	}
	sum, err := postgres.GetConsoleSummary(r.Context(), s.Pool, s.now().Add(-d))
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.auditView(r, "ops.viewed_console", "", map[string]any{"window": window})
	s.renderConsole(w, r, "console", map[string]any{"Title": "Console", "S": sum, "Window": window,
		"Windows": []string{"24h", "7d", "30d"}, "Top": max(sum.Funnel[0].Count, 1)})
}

func (s *Server) handleOrderSearch(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query().Get("q")
	hits, err := postgres.SearchOrders(r.Context(), s.Pool, q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if q != "" {
		s.auditView(r, "ops.searched_orders", "", map[string]any{"query": q, "results": len(hits)})
	}
	if len(hits) == 1 && !strings.Contains(q, "@") {
		http.Redirect(w, r, "/ops/orders/"+hits[0].OrderID, http.StatusSeeOther)
		return
	}
	s.renderConsole(w, r, "orders", map[string]any{"Title": "Orders", "Hits": hits})
}

func (s *Server) handleOrderStory(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	story, err := postgres.GetOrderStory(r.Context(), s.Pool, ps.ByName("id"))
	if gpubroker.ErrorCode(err) == gpubroker.ENOTFOUND {
		http.Error(w, "no such order", http.StatusNotFound)
		return
	} else if err != nil {
		writeError(w, r, err)
		return
	}
	s.auditView(r, "ops.viewed_order", story.Order.ID, nil)
	dash := "https://dashboard.stripe.com"
	if s.StripeTestMode {
		dash += "/test"
	}
	s.renderConsole(w, r, "order", map[string]any{"Title": "Order " + story.Order.ID, "Story": story, "StripeDashboard": dash})
}
