package api

import (
	"embed"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"gpubroker"
	"gpubroker/opsview"
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

// funnelLabels name the funnel's steps (opsview.FunnelSteps, shown beside each label) for
// people, with what reaching each means.
var funnelLabels = map[string][2]string{
	"checkouts_started": {"Checkouts started", "every order: a checkout begun or a free trial claimed"},
	"authorized":        {"Authorized", "the card hold authorized, or a free trial (nothing to authorize)"},
	"activated":         {"Activated", "and the order's account is active"},
	"deployed":          {"Deployed", "and Deploy was pressed"},
	"captured":          {"Captured", "and the pod went on past capture (the money taken; a free trial's too)"},
	"running":           {"Running", "and the pod ran"},
}

// consoleStep is a funnel row as the console shows it.
type consoleStep struct {
	Name, Label, Means string
	Orders             int64
}

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
	snap, err := s.OpsView.Latest(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	window := r.URL.Query().Get("window")
	span, ok := snap.Spans[window]
	if !ok {
		window = opsview.Windows[0].Name
		span = snap.Spans[window]
	}
	var windows []string
	for _, w := range opsview.Windows {
		windows = append(windows, w.Name)
	}
	var steps []consoleStep
	for _, st := range span.Funnel.Steps() {
		steps = append(steps, consoleStep{Name: st.Name, Label: funnelLabels[st.Name][0], Means: funnelLabels[st.Name][1], Orders: st.Orders})
	}
	var repairs []repairRow
	for _, rp := range snap.Repairs {
		repairs = append(repairs, repairRow{RepairRow: rp, Detail: compactDetail(rp.Detail)})
	}
	s.auditView(r, "ops.viewed_console", "", map[string]any{"window": window})
	s.renderConsole(w, r, "console", map[string]any{"Title": "Console", "S": snap, "Span": span, "Window": window,
		"Windows": windows, "Funnel": steps, "Top": max(steps[0].Orders, 1), "Repairs": repairs,
		"Collector": s.OpsView.Status(), "Now": s.now()})
}

// repairRow is a reconciler repair with its detail as the console prints it.
type repairRow struct {
	postgres.RepairRow
	Detail string
}

// compactDetail renders an audit detail as "k=v, k=v" in key order.
func compactDetail(d map[string]any) string {
	parts := make([]string, 0, len(d))
	for _, k := range slices.Sorted(maps.Keys(d)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, d[k]))
	}
	return strings.Join(parts, ", ")
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
	entries := make([]storyRow, len(story.Entries))
	for i, e := range story.Entries {
		entries[i] = storyRow{StoryEntry: e, Detail: storyDetail(e)}
	}
	s.renderConsole(w, r, "order", map[string]any{"Title": "Order " + story.Order.ID, "Story": story, "Entries": entries, "StripeDashboard": dash})
}

// storyRow is an entry of an order's story with its particulars as the console words them.
type storyRow struct {
	postgres.StoryEntry
	Detail string
}

// storyDetail words a story entry's particulars: a webhook's event id and whether it was
// processed, a job's id, state, attempts and last error, an audit event's detail, an email's
// delivery and feedback.
func storyDetail(e postgres.StoryEntry) string {
	var parts []string
	switch e.Source {
	case "webhook":
		state := "processed"
		if !e.Processed {
			state = "not processed yet"
		}
		parts = []string{e.EventID, state}
	case "job":
		parts = []string{fmt.Sprintf("job %d", e.JobID), e.State, fmt.Sprintf("attempt %d of %d", e.Attempt, e.MaxAttempts)}
		if e.LastError != "" {
			parts = append(parts, "last error: "+e.LastError)
		}
	case "audit":
		return compactDetail(e.Audit)
	case "email":
		parts = []string{e.EmailStatus}
		for _, p := range []string{e.EmailError, e.Feedback} {
			if p != "" {
				parts = append(parts, p)
			}
		}
	}
	return strings.Join(parts, " · ")
}
