package api

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func newKeyLine(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	k, err := ssh.NewPublicKey(pub)
	require.NoError(t, err)
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " ada@laptop"
}

// Twelve keys added at once over real HTTP end in exactly ten: the account's row lock bounds
// the count, and the rest are told why.
func TestSSHKeysLimitUnderConcurrency(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	srv := httptest.NewServer(ts.h)
	t.Cleanup(srv.Close)
	session := ts.signIn("many@example.com")
	codes := make([]int, 12)
	var wg sync.WaitGroup
	for i := range codes {
		body, _ := json.Marshal(map[string]string{"name": "k", "public_key": newKeyLine(t)})
		wg.Go(func() {
			req, _ := http.NewRequest("POST", srv.URL+"/api/me/ssh-keys", bytes.NewReader(body))
			req.Header.Set("Origin", testPublicURL)
			req.Header.Set("Content-Type", "application/json")
			req.AddCookie(&http.Cookie{Name: SessionCookie, Value: session})
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				codes[i] = resp.StatusCode
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	created := 0
	for _, code := range codes {
		if code == http.StatusCreated {
			created++
		} else {
			require.Equal(t, http.StatusUnprocessableEntity, code)
		}
	}
	require.Equal(t, 10, created)
	require.Equal(t, 10, count(t, ts, `SELECT count(*) FROM ssh_keys`))
	code, body := ts.call("POST", "/api/me/ssh-keys", map[string]string{"public_key": newKeyLine(t)}, session)
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Equal(t, "too_many_keys", body["error"])
}
