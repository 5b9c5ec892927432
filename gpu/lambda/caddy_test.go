package lambda_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"

	"gpubroker/gpu/lambda"
)

// A code-server VM's Caddy gets a real certificate by ACME for the VM's IP-derived name and
// serves code-server behind it. Proven here with Debian's Caddy and pebble (a local ACME
// server that really validates HTTP-01), a DNS stand-in that answers names the way nip.io
// does, and a small HTTP server standing in for code-server: an HTTPS request to the name
// verifies against pebble's root (and fails without it), and port 80 sends browsers to HTTPS.
// Everything listens on loopback ports of its own; only the ACME directory and ports differ
// from the VM's Caddyfile (its site block is used as it is). Fails, never skips, without the
// packages.
func TestCaddyGetsACertificateByACME(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{"caddy", "pebble"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed, and this test runs it; install it with:\n"+
				"  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends caddy pebble", bin)
		}
	}
	dir := t.TempDir()
	host := lambda.IPHost("127.0.0.1")
	require.Equal(t, "127-0-0-1.nip.io", host)

	dnsAddr := serveNipDNS(t)
	acmeCert, acmeKey, acmeRoots := selfSignedLoopback(t, dir)
	acmePort, mgmtPort, httpPort, httpsPort := freePort(t), freePort(t), freePort(t), freePort(t)
	pebbleConfig := filepath.Join(dir, "pebble.json")
	writeJSON(t, pebbleConfig, map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", acmePort),
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate":             acmeCert,
		"privateKey":              acmeKey,
		"httpPort":                httpPort, // where it validates HTTP-01: Caddy's port 80 here
		"tlsPort":                 httpsPort,
		"ocspResponderURL":        "",
	}})
	pebble := exec.Command("pebble", "-config", pebbleConfig, "-dnsserver", dnsAddr)
	pebble.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	start(t, pebble, filepath.Join(dir, "pebble.log"))

	codeServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"status":"alive"}`)
	}))
	t.Cleanup(codeServer.Close)
	_, upstream, err := net.SplitHostPort(codeServer.Listener.Addr().String())
	require.NoError(t, err)

	// pebble's start-up must be over before Caddy asks it (else Caddy waits a minute to try
	// again).
	mgmt := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: acmeRoots}}}
	require.Eventually(t, func() bool {
		resp, err := mgmt.Get(fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "pebble's directory; log in %s", dir)

	// The VM's Caddyfile (its name from the environment, as gpubroker-public-host writes it)
	// with a global block of the test's: pebble as the CA (its listener's certificate
	// trusted) with HTTP-01 only, which is what port 80 is opened for (on the VM Caddy may
	// also answer TLS-ALPN-01 on 443), the ports, Caddy's files in dir.
	global := fmt.Sprintf("cert_issuer acme {\n\t\tdir https://127.0.0.1:%d/dir\n\t\ttrusted_roots %s\n\t\tdisable_tlsalpn_challenge\n\t}\n"+
		"\thttp_port %d\n\thttps_port %d\n\tadmin off\n\tstorage file_system %s",
		acmePort, acmeCert, httpPort, httpsPort, filepath.Join(dir, "caddy-data"))
	caddyfile := filepath.Join(dir, "Caddyfile")
	require.NoError(t, os.WriteFile(caddyfile, []byte(lambda.Caddyfile(global, mustAtoi(t, upstream))), 0o600))
	caddy := exec.Command("caddy", "run", "--config", caddyfile, "--adapter", "caddyfile")
	caddy.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "GPUBROKER_HOST="+host)
	start(t, caddy, filepath.Join(dir, "caddy.log"))

	// pebble's root, which signs what it issues, from its management interface.
	var rootPEM []byte
	require.Eventually(t, func() bool {
		resp, err := mgmt.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmtPort))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		rootPEM, err = io.ReadAll(resp.Body)
		return err == nil && resp.StatusCode == http.StatusOK
	}, 20*time.Second, 100*time.Millisecond, "pebble's management interface; log in %s", dir)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(rootPEM))

	// The customer's browser: the name resolves to the VM (here loopback, Caddy's HTTPS port).
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		h, p, _ := net.SplitHostPort(addr)
		if h != host {
			return nil, fmt.Errorf("unexpected host %s", h)
		}
		if p == "443" {
			p = fmt.Sprint(httpsPort)
		} else {
			p = fmt.Sprint(httpPort)
		}
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", p))
	}
	browser := func(trusted *x509.CertPool) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: trusted}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	var lastErr error
	ok := assertEventually(60*time.Second, func() bool {
		resp, err := browser(roots).Get("https://" + host + "/healthz")
		if err != nil {
			lastErr = err
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		lastErr = fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
		if resp.StatusCode != http.StatusOK || string(body) != `{"status":"alive"}` {
			return false
		}
		leaf := resp.TLS.PeerCertificates[0]
		require.Contains(t, leaf.DNSNames, host)
		require.Contains(t, resp.TLS.VerifiedChains[0][len(resp.TLS.VerifiedChains[0])-1].Subject.CommonName, "Pebble Root CA")
		return true
	})
	if !ok {
		logs, _ := os.ReadFile(filepath.Join(dir, "caddy.log"))
		plogs, _ := os.ReadFile(filepath.Join(dir, "pebble.log"))
		t.Fatalf("code-server never answered over HTTPS with pebble's certificate: %v\ncaddy:\n%s\npebble:\n%s", lastErr, tail(logs), tail(plogs))
	}

	logs, err := os.ReadFile(filepath.Join(dir, "caddy.log"))
	require.NoError(t, err)
	require.Contains(t, string(logs), `"challenge_type":"http-01"`, "validated over port 80")

	// Not a certificate any client accepts: without pebble's root it does not verify.
	_, err = browser(nil).Get("https://" + host + "/healthz")
	var unknown x509.UnknownAuthorityError
	require.True(t, errors.As(err, &unknown), "%v", err)

	// Port 80 (open for HTTP-01) sends anyone else to HTTPS.
	resp, err := browser(roots).Get("http://" + host + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusPermanentRedirect, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "https://"+host), resp.Header.Get("Location"))
}

// serveNipDNS answers A queries for <a>-<b>-<c>-<d>.nip.io with a.b.c.d, as nip.io does, on
// a loopback UDP port, and returns its address.
func serveNipDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			h.Response, h.Authoritative, h.RCode = true, true, dnsmessage.RCodeSuccess
			b := dnsmessage.NewBuilder(nil, h)
			b.EnableCompression()
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
			label, ok := strings.CutSuffix(name, ".nip.io")
			if i := strings.LastIndex(label, "."); i >= 0 {
				label = label[i+1:]
			}
			ip := net.ParseIP(strings.ReplaceAll(label, "-", ".")).To4()
			if ok && ip != nil && q.Type == dnsmessage.TypeA {
				_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: [4]byte(ip)})
			}
			if msg, err := b.Finish(); err == nil {
				_, _ = pc.WriteTo(msg, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// selfSignedLoopback writes a certificate for 127.0.0.1 and localhost (pebble's own HTTPS
// listener) and its key into dir, and returns their paths and a pool trusting it.
func selfSignedLoopback(t *testing.T, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble listener"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPath, keyPath = filepath.Join(dir, "acme.crt"), filepath.Join(dir, "acme.key")
	require.NoError(t, os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// start starts cmd with its output in logPath and kills it when the test ends.
func start(t *testing.T, cmd *exec.Cmd, logPath string) {
	t.Helper()
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	_, err := fmt.Sscan(s, &n)
	require.NoError(t, err)
	return n
}

func assertEventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// The VM names itself as convert names it from Lambda's ip: the public address the default
// route leaves from, or, behind NAT (a private source address), the one the internet sees.
// The script runs under sh with ip and curl stood in for.
func TestPublicHostScript(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ route, seen, want string }{
		{"1.1.1.1 via 203.0.113.1 dev eth0 src 203.0.113.9 uid 0", "", "GPUBROKER_HOST=" + lambda.IPHost("203.0.113.9")},
		{"1.1.1.1 via 10.19.0.1 dev eth0 src 10.19.4.7 uid 0", "198.51.100.7\n", "GPUBROKER_HOST=" + lambda.IPHost("198.51.100.7")},
		{"1.1.1.1 via 172.20.0.1 dev eth0 src 172.20.3.3 uid 0", "198.51.100.8\n", "GPUBROKER_HOST=198-51-100-8.nip.io"},
	} {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "ip"), []byte("#!/bin/sh\necho '"+c.route+"'\n"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "curl"), []byte("#!/bin/sh\nprintf '"+strings.ReplaceAll(c.seen, "\n", `\n`)+"'\n"), 0o755))
		script := filepath.Join(dir, "gpubroker-public-host")
		require.NoError(t, os.WriteFile(script, []byte(lambda.PublicHostScript), 0o755))
		cmd := exec.Command("sh", script)
		cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Equal(t, c.want+"\n", string(out), c.route)
	}
}
