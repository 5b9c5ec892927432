package sim

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"gpubroker/gpu"
)

// Paths Handler serves.
const (
	InstancesPath = "/dev/gpu/instances"
	// IDEPrefix is where the stand-in IDEs answer, IDEPrefix<instance id>/….
	IDEPrefix = "/dev/gpu/ide/"
	idePrefix = IDEPrefix
)

// Record is what the simulator was asked to run for one instance, as a real provider would
// have received it, and what the instance did with it.
type Record struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Provider string    `json:"provider"`
	GPU      string    `json:"gpu"`
	Region   string    `json:"region"`
	Status   gpu.State `json:"status"`
	Error    string    `json:"error,omitempty"`
	Image    string    `json:"image"`
	IDE      string    `json:"ide"`
	// SSHAuthorizedKeys are the lines the instance's authorized_keys holds.
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys"`
	// IDESecret is the IDE's token or password. It is never part of the JSON.
	IDESecret string        `json:"-"`
	Workspace gpu.Workspace `json:"-"`
	// WorkspaceFiles are the files unpacked from the workspace tarball, empty when there was
	// none or it was refused.
	WorkspaceFiles []string  `json:"workspace_files"`
	CreatedAt      time.Time `json:"created_at"`
}

// record is in as a Record. s.mu must be held.
func (s *Sim) record(in *instance) Record {
	v := s.view(in)
	return Record{
		ID: v.ID, Name: v.Name, Provider: v.Provider, GPU: v.GPU, Region: v.Region,
		Status: v.State, Error: v.Error, Image: in.asked.Image, IDE: in.asked.IDE,
		SSHAuthorizedKeys: append([]string{}, in.asked.SSHPublicKeys...),
		IDESecret:         in.asked.IDESecret,
		Workspace:         in.asked.Workspace,
		WorkspaceFiles:    append([]string{}, in.files...),
		CreatedAt:         in.launchedAt.UTC(),
	}
}

// Record returns what the instance with the given id was asked to run.
func (s *Sim) Record(id string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.find(id)
	if in == nil {
		return Record{}, false
	}
	return s.record(in), true
}

// Records returns every instance's record, newest first.
func (s *Sim) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.instances))
	for _, in := range slices.Backward(s.instances) {
		out = append(out, s.record(in))
	}
	return out
}

// Fail makes the instance die at the provider, as a host failure would: it is failed from now
// on (still live, so it must be terminated). It reports false for an unknown or ended instance.
func (s *Sim) Fail(id, reason string) bool { return s.Report(id, gpu.StateFailed, reason) }

// Report makes the instance report state from now on, with detail as its Error: StateFailed
// for a death, StateUnknown for a status a client could not interpret, StateRunning to bring it
// back. It reports false for an unknown or ended instance.
func (s *Sim) Report(id string, state gpu.State, detail string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.find(id)
	if in == nil || !in.State.Live() {
		return false
	}
	s.view(in) // settle the boot first, so it does not overwrite the state
	in.State, in.Error = state, detail
	return true
}

// Handler serves the simulator's dev pages, mounted at /dev/gpu/ on the dev server:
//
//	GET  /dev/gpu/instances              what each instance was asked to run (JSON with
//	                                     Accept: application/json, newest first; HTML otherwise)
//	POST /dev/gpu/instances/{id}/fail    the instance dies at the provider
//	GET  /dev/gpu/ide/{id}/              a stand-in IDE that opens only with the secret:
//	                                     Jupyter ?token=<secret>, code-server after
//	POST /dev/gpu/ide/{id}/login         password=<secret> (a cookie, as code-server does)
//	GET  /dev/gpu/ide/{id}/api/status    Jupyter's status (with the token), and
//	GET  /dev/gpu/ide/{id}/healthz       code-server's: what readiness asks (gpu/ready)
func (s *Sim) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == InstancesPath || p == InstancesPath+"/":
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			s.serveList(w, r)
		case strings.HasPrefix(p, InstancesPath+"/") && strings.HasSuffix(p, "/fail"):
			id := strings.TrimSuffix(strings.TrimPrefix(p, InstancesPath+"/"), "/fail")
			if r.Method != http.MethodPost {
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			if !s.Fail(id, "the host failed (POST "+InstancesPath+"/"+id+"/fail)") {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case strings.HasPrefix(p, idePrefix):
			s.serveIDE(w, r, strings.TrimPrefix(p, idePrefix))
		default:
			http.NotFound(w, r)
		}
	})
}

var listPage = template.Must(template.New("list").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GPU simulator: instances</title>
<style>body{font:14px system-ui,sans-serif;margin:2rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}code{font-size:12px}</style>
</head><body><h1>GPU simulator: instances</h1>
<p>What a real provider would have been asked to run, newest first. <code>POST /dev/gpu/instances/{id}/fail</code> kills one.</p>
<table><thead><tr><th>id</th><th>name</th><th>provider</th><th>gpu</th><th>region</th><th>status</th><th>image</th><th>SSH keys</th><th>workspace files</th><th>created</th></tr></thead><tbody>
{{range .}}<tr><td>{{.ID}}</td><td>{{.Name}}</td><td>{{.Provider}}</td><td>{{.GPU}}</td><td>{{.Region}}</td><td>{{.Status}}{{with .Error}}<br>{{.}}{{end}}</td><td><code>{{.Image}}</code></td>
<td>{{range .SSHAuthorizedKeys}}<code>{{.}}</code><br>{{else}}none{{end}}</td><td>{{range .WorkspaceFiles}}{{.}}<br>{{else}}none{{end}}</td><td>{{.CreatedAt.Format "2006-01-02 15:04:05"}}</td></tr>
{{else}}<tr><td colspan="10">No instances yet.</td></tr>{{end}}
</tbody></table></body></html>
`))

func (s *Sim) serveList(w http.ResponseWriter, r *http.Request) {
	recs := s.Records()
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(recs)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = listPage.Execute(w, recs)
}

const ideCookie = "gpubroker-sim-ide"

// ideSession is the cookie value a code-server login sets: an HMAC of the instance id under
// its password, so it proves the password without holding it.
func ideSession(id, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// serveIDE is the stand-in IDE of one running instance.
func (s *Sim) serveIDE(w http.ResponseWriter, r *http.Request, rest string) {
	id, sub, _ := strings.Cut(rest, "/")
	s.mu.Lock()
	var rec Record
	var broken Broken
	in := s.find(id)
	if in != nil {
		rec, broken = s.record(in), in.broken
	}
	s.mu.Unlock()
	if in == nil || rec.Status != gpu.StateRunning {
		http.Error(w, "no running instance "+id, http.StatusNotFound)
		return
	}
	if broken&NoIDE != 0 {
		http.Error(w, "502 Bad Gateway: nothing answers behind the proxy", http.StatusBadGateway)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	open := func() {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>%s (simulated)</title><h1>%s on %s (simulated)</h1><p>Workspace: %s</p><ul>",
			template.HTMLEscapeString(rec.IDE), template.HTMLEscapeString(rec.IDE), template.HTMLEscapeString(id),
			template.HTMLEscapeString(rec.Workspace.Path))
		for _, f := range rec.WorkspaceFiles {
			fmt.Fprintf(w, "<li>%s</li>", template.HTMLEscapeString(f))
		}
		fmt.Fprint(w, "</ul>")
	}
	switch rec.IDE {
	case gpu.IDEJupyter:
		token := r.URL.Query().Get("token")
		if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "token "); ok {
			token = t
		}
		switch {
		case token == "":
			http.Error(w, "Jupyter needs its token", http.StatusUnauthorized)
		case rec.IDESecret == "" || !equal(token, rec.IDESecret):
			http.Error(w, "wrong token", http.StatusForbidden)
		case sub == "api/status": // Jupyter Server's own status endpoint
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"started":%q,"last_activity":%q,"connections":0,"kernels":0}`, rec.CreatedAt.Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339))
		default:
			open()
		}
	case gpu.IDECodeServer:
		if sub == "healthz" { // code-server's own health endpoint, open as code-server's is
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"alive","lastHeartbeat":0}`)
			return
		}
		if sub == "login" && r.Method == http.MethodPost {
			if rec.IDESecret == "" || !equal(r.PostFormValue("password"), rec.IDESecret) {
				http.Error(w, "wrong password", http.StatusUnauthorized)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: ideCookie, Value: ideSession(id, rec.IDESecret), Path: idePrefix + id + "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
			http.Redirect(w, r, idePrefix+id+"/", http.StatusSeeOther)
			return
		}
		if c, err := r.Cookie(ideCookie); err == nil && rec.IDESecret != "" && equal(c.Value, ideSession(id, rec.IDESecret)) {
			open()
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `<!doctype html><title>code-server login</title><form method="post" action="%slogin"><input type="password" name="password" autofocus><button>Log in</button></form>`,
			template.HTMLEscapeString(idePrefix+id+"/"))
	default:
		http.NotFound(w, r)
	}
}
