package images_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/images"
)

// The bootstrap is served at a name carrying its checksum, cacheable for ever; nothing else is.
func TestHandlerServesTheBootstrap(t *testing.T) {
	srv := httptest.NewServer(images.Handler())
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(images.StartScript)
	require.Equal(t, hex.EncodeToString(sum[:]), images.StartScriptSHA256)
	require.Equal(t, "gpubroker-start-"+images.StartScriptSHA256[:12]+".sh", images.StartScriptName)
	require.Equal(t, "https://gpubroker.example/boot/"+images.StartScriptName, images.StartScriptURL("https://gpubroker.example/"))

	resp, err := http.Get(srv.URL + images.URLPrefix + images.StartScriptName)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, images.StartScript, body)
	require.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"))
	require.Equal(t, `"`+images.StartScriptSHA256+`"`, resp.Header.Get("ETag"))

	for _, p := range []string{"gpubroker-start.sh", "gpubroker-start-000000000000.sh", ""} {
		resp, err := http.Get(srv.URL + images.URLPrefix + p)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode, p)
	}
	resp, err = http.Post(srv.URL+images.URLPrefix+images.StartScriptName, "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// The start command of container providers refuses what it cannot quote safely.
func TestStartCommandRefusesOddInput(t *testing.T) {
	_, err := images.StartCommand("https://gpubroker.example/boot/x.sh'; rm -rf /", images.StartScriptSHA256)
	require.Error(t, err)
	_, err = images.StartCommand("https://gpubroker.example/boot/x.sh", "abc")
	require.Error(t, err)
	argv, err := images.StartCommand(images.StartScriptURL("https://gpubroker.example"), images.StartScriptSHA256)
	require.NoError(t, err)
	require.Equal(t, []string{"bash", "-c"}, argv[:2])
	require.NotContains(t, argv[2], "'", "RunPod's args is one string: the script goes inside single quotes")
	require.Equal(t, "bash -c '"+argv[2]+"'", images.Args(argv))
}

// runStart runs the start command as the container would, with /start.sh replaced by a file
// in dir, and returns its output once it ends or once want appears.
func runStart(t *testing.T, url, sum, dir, want string) string {
	t.Helper()
	argv, err := images.StartCommand(url, sum)
	require.NoError(t, err)
	script := strings.ReplaceAll(argv[2], "/start.sh", filepath.Join(dir, "start.sh"))
	script = strings.ReplaceAll(script, "/tmp/gpubroker-start.sh", filepath.Join(dir, "gpubroker-start.sh"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1], script)
	cmd.Env = append(os.Environ(), "GPUBROKER_TEST_DIR="+dir)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	for {
		select {
		case <-done:
			return out.String()
		case <-time.After(20 * time.Millisecond):
			if want != "" && strings.Contains(out.String(), want) {
				cmd.Process.Kill()
				<-done
				return out.String()
			}
		case <-ctx.Done():
			t.Fatalf("the start command did not end nor say %q:\n%s", want, out.String())
		}
	}
}

// The start command downloads the bootstrap, runs it only when its SHA-256 is the one it was
// given, and otherwise says so and starts the image's own /start.sh (RunPod's sshd and
// Jupyter) rather than nothing.
func TestStartCommandChecksTheBootstrap(t *testing.T) {
	requireCommand(t, "curl")
	bootstrap := []byte("#!/usr/bin/env bash\necho bootstrap ran with \"$GPUBROKER_TEST_DIR\"\ntouch \"$GPUBROKER_TEST_DIR/ran\"\n")
	sum := sha256.Sum256(bootstrap)
	good := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/boot/b.sh" {
			http.NotFound(w, r)
			return
		}
		w.Write(bootstrap)
	}))
	t.Cleanup(srv.Close)
	fallback := func(dir string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "start.sh"), []byte("#!/bin/sh\necho image start.sh ran\n"), 0o755))
	}

	dir := t.TempDir()
	fallback(dir)
	out := runStart(t, srv.URL+"/boot/b.sh", good, dir, "")
	require.Contains(t, out, "bootstrap ran with "+dir)
	require.FileExists(t, filepath.Join(dir, "ran"))
	require.NotContains(t, out, "image start.sh ran")

	dir = t.TempDir()
	fallback(dir)
	out = runStart(t, srv.URL+"/boot/b.sh", strings.Repeat("0", 64), dir, "")
	require.Contains(t, out, "has SHA-256 "+good+", want "+strings.Repeat("0", 64)+": not run")
	require.Contains(t, out, "image start.sh ran")
	require.NoFileExists(t, filepath.Join(dir, "ran"))
	require.NoFileExists(t, filepath.Join(dir, "gpubroker-start.sh"), "the refused download is removed")

	dir = t.TempDir()
	out = runStart(t, srv.URL+"/boot/missing.sh", good, dir, "sleeping")
	require.Contains(t, out, "cannot download")
	require.NoFileExists(t, filepath.Join(dir, "ran"))
}

func requireCommand(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is needed here (apt-get install %s)", name, name)
	}
}
