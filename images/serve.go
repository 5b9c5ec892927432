package images

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// URLPrefix is the path the bootstrap is served under, by the api (CloudFront sends /boot/*
// to it), like the starter projects under /workspaces/.
const URLPrefix = "/boot/"

var (
	// StartScriptSHA256 is the hex SHA-256 of StartScript, which a container checks before
	// running what it downloaded.
	StartScriptSHA256 = func() string { s := sha256.Sum256(StartScript); return hex.EncodeToString(s[:]) }()
	// StartScriptName carries the checksum, so a changed script gets a new URL and no cache
	// ever serves a stale one.
	StartScriptName = "gpubroker-start-" + StartScriptSHA256[:12] + ".sh"
)

// modTime is the fixed Last-Modified of the script: its content, not a build time, names it.
var modTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// StartScriptURL is where instances download the bootstrap from, served under publicURL (the
// site's origin: PUBLIC_URL).
func StartScriptURL(publicURL string) string {
	return strings.TrimRight(publicURL, "/") + URLPrefix + StartScriptName
}

// Handler serves the bootstrap at URLPrefix+StartScriptName (mount it at URLPrefix), from the
// binary that names it in launches, so no release order can break it.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path != URLPrefix+StartScriptName {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/x-shellscript; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("ETag", `"`+StartScriptSHA256+`"`)
		http.ServeContent(w, r, "", modTime, bytes.NewReader(StartScript))
	})
}

var (
	// safeURL is what goes unquoted into the start command: no shell syntax, no spaces.
	safeURL   = regexp.MustCompile(`^https?://[A-Za-z0-9.:/_-]+$`)
	hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// StartCommand is the command a container provider runs in a public image instead of its own
// start: it downloads the bootstrap from url and runs it only if its SHA-256 is sum. On a
// failed download or a mismatch it says so in the container log and starts the image's own
// /start.sh (RunPod's: sshd from PUBLIC_KEY, Jupyter from JUPYTER_PASSWORD), so the customer
// still gets what the image offers; without one it sleeps, keeping the log readable.
func StartCommand(url, sum string) ([]string, error) {
	if !safeURL.MatchString(url) {
		return nil, fmt.Errorf("images: bootstrap URL %q has characters the start command cannot carry", url)
	}
	if !hexSHA256.MatchString(sum) {
		return nil, fmt.Errorf("images: %q is not a hex SHA-256", sum)
	}
	// No single quote anywhere: RunPod takes the command as one string (Args).
	script := strings.Join([]string{
		"u=" + url + "; s=" + sum + "; f=/tmp/gpubroker-start.sh",
		`echo "gpubroker: fetching the bootstrap $u" >&2`,
		`if curl -fsSL --retry 5 --retry-connrefused --connect-timeout 10 --max-time 300 -o $f $u || wget -q -T 60 -t 5 -O $f $u; then`,
		`got=$(sha256sum $f); got=${got%% *}`,
		`if [ "$got" = "$s" ]; then exec bash $f; fi`,
		`echo "gpubroker: the bootstrap $u has SHA-256 $got, want $s: not run" >&2`,
		`else echo "gpubroker: cannot download the bootstrap $u: not run" >&2; fi`,
		`rm -f $f`,
		`if [ -x /start.sh ]; then echo "gpubroker: starting /start.sh of the image instead" >&2; exec /start.sh; fi`,
		`echo "gpubroker: no /start.sh in the image either; sleeping" >&2`,
		`exec sleep infinity`,
	}, "\n")
	return []string{"bash", "-c", script}, nil
}

// Args is argv as one string for a provider that takes the container's command as a string
// (RunPod's args): the script of StartCommand single-quoted, which it never contains.
func Args(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`;&|<>(){}*?[]#~!") {
			quoted[i] = a
			continue
		}
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(quoted, " ")
}
