package api

import (
	"html/template"
	"net/http"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"gpubroker"
	"gpubroker/postgres"
)

// MailViewer serves the outbox at /dev/mail for local development: a page, or JSON
// ([{to,subject,kind,text,html,created_at}], newest first) when asked with
// Accept: application/json. ?to= filters by recipient. Mount it only in `dev`.
func MailViewer(pool *pgxpool.Pool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		to := gpubroker.NormalizeEmail(r.URL.Query().Get("to"))
		emails, err := postgres.ListEmails(r.Context(), pool, to, 100)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if strings.Contains(r.Header.Get("Accept"), "application/json") || r.URL.Query().Get("format") == "json" {
			out := []DevEmail{}
			for _, e := range emails {
				out = append(out, DevEmail{ID: e.ID, To: e.To, Subject: e.Subject, Kind: e.Kind, Text: e.Text, HTML: e.HTML, Status: string(e.Status), CreatedAt: e.CreatedAt.UTC()})
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = mailPage.Execute(w, map[string]any{"Emails": emails, "To": to})
	})
}

var linkRE = regexp.MustCompile(`https?://[^\s<>"]+`)

var mailPage = template.Must(template.New("mail").Funcs(template.FuncMap{
	// linkify makes the links in a text body clickable (escaping everything else).
	"linkify": func(s string) template.HTML {
		var b strings.Builder
		last := 0
		for _, m := range linkRE.FindAllStringIndex(s, -1) {
			b.WriteString(template.HTMLEscapeString(s[last:m[0]]))
			u := template.HTMLEscapeString(s[m[0]:m[1]])
			b.WriteString(`<a href="` + u + `">` + u + `</a>`)
			last = m[1]
		}
		b.WriteString(template.HTMLEscapeString(s[last:]))
		return template.HTML(b.String())
	},
}).Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Outbox · GPU Broker dev</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:860px;margin:2rem auto;padding:0 1rem;color:#111}
article{border:1px solid #ccd;border-radius:8px;padding:1rem;margin:1rem 0}h2{font-size:1.05rem;margin:.2rem 0}
.meta{color:#555;font-size:.85rem}pre{white-space:pre-wrap;background:#f6f7f9;padding:.75rem;border-radius:6px}
details{margin-top:.5rem}iframe{width:100%;height:420px;border:1px solid #ddd}</style></head><body>
<h1>Outbox{{if .To}} for {{.To}}{{end}}</h1>
<p class="meta">Every email GPU Broker renders is stored here first. With SES unconfigured, this page is the delivery. <a href="/dev/mail">All</a></p>
<form method="get"><label for="to">Recipient</label> <input id="to" name="to" type="email" value="{{.To}}"> <button>Filter</button></form>
{{range .Emails}}<article data-kind="{{.Kind}}"><h2>{{.Subject}}</h2>
<p class="meta">to <a href="/dev/mail?to={{.To}}">{{.To}}</a> · {{.Kind}} · {{.Status}} · {{.CreatedAt.UTC.Format "2006-01-02 15:04:05"}} UTC</p>
<pre>{{linkify .Text}}</pre>
<details><summary>HTML version</summary><iframe sandbox title="HTML version of {{.Subject}}" srcdoc="{{.HTML}}"></iframe></details></article>
{{else}}<p>No emails yet.</p>{{end}}</body></html>`))
