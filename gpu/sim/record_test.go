package sim_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
	"gpubroker/gpu/sim"
)

const (
	image  = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
	secret = "ide-secret-9f8e7d"
	keyA   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@laptop"
	keyB   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBob bob@desk"
)

// tarball is a small .tar.gz with the given files.
func tarball(t *testing.T, files map[string]string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"README.md", "data/notes.txt"} {
		body, ok := files[name]
		if !ok {
			continue
		}
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}))
		_, err := io.WriteString(tw, body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:])
}

func serve(t *testing.T, body []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	t.Cleanup(srv.Close)
	return srv
}

func launchReq(t *testing.T, s *sim.Sim, ws gpu.Workspace) gpu.LaunchRequest {
	offers, err := s.ListOffers(context.Background(), gpu.OfferQuery{GPU: "a10", Region: "us-east"})
	require.NoError(t, err)
	return gpu.LaunchRequest{Offer: offers[0], Name: "gpubroker-pod-1", Image: image, IDE: gpu.IDEJupyter,
		SSHPublicKeys: []string{keyA, keyB}, IDESecret: secret, Workspace: ws}
}

// The simulator records what it was asked to run: image, keys, secret and the workspace's files
// as fetched from the workspace URL.
func TestRecordsWhatItRuns(t *testing.T) {
	t.Parallel()
	body, sum := tarball(t, map[string]string{"README.md": "hi", "data/notes.txt": "a\nb\n"})
	srv := serve(t, body)
	s := sim.New(sim.Options{Images: sim.PublicImages})
	ws := gpu.Workspace{Name: "p", Path: "/workspace/p", URL: srv.URL + "/p.tar.gz", SHA256: sum}
	inst, err := s.Launch(context.Background(), launchReq(t, s, ws))
	require.NoError(t, err)

	rec, ok := s.Record(inst.ID)
	require.True(t, ok)
	require.Equal(t, image, rec.Image)
	require.Equal(t, []string{keyA, keyB}, rec.SSHAuthorizedKeys)
	require.Equal(t, secret, rec.IDESecret)
	require.Equal(t, ws, rec.Workspace)
	require.Equal(t, []string{"README.md", "data/notes.txt"}, rec.WorkspaceFiles)
	got, err := s.GetInstance(context.Background(), inst.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateRunning, got.State)
	require.NotContains(t, got.JupyterURL, secret, "links never carry the secret")
}

// The simulated registry holds a fixed list of public images (PublicImages), never our
// catalog's, and like RunPod the simulator does not refuse another image at launch: the
// instance is created, bills, and never boots (RunPod's pod sits without a runtime: "error
// pulling image"). Readiness must be ours to judge. With no Images configured every image
// boots (unit tests of other parts).
func TestUnknownImageNeverBoots(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Options{Images: sim.PublicImages})
	for _, private := range []string{
		"ghcr.io/gpubroker/data-science:20261202-b47076b", // the tags templates.json once named, never pushed
		"gpubroker/datascience:pytorch2-cuda12",
		"runpod/pytorch:latest",
	} {
		r := launchReq(t, s, gpu.Workspace{})
		r.Name, r.Image = "gpubroker-"+strings.NewReplacer("/", "-", ":", "-").Replace(private), private
		inst, err := s.Launch(context.Background(), r)
		require.NoError(t, err, private)
		for range 3 {
			got, err := s.GetInstance(context.Background(), inst.ID)
			require.NoError(t, err)
			require.Equal(t, gpu.StateBooting, got.State, "%s: no runtime, ever", private)
			require.True(t, got.State.Live(), "it is still there, and bills")
		}
	}
	for _, public := range sim.PublicImages {
		require.NotContains(t, public, ":latest")
		r := launchReq(t, s, gpu.Workspace{})
		r.Name, r.Image = "gpubroker-"+strings.NewReplacer("/", "-", ":", "-").Replace(public), public
		inst, err := s.Launch(context.Background(), r)
		require.NoError(t, err)
		require.Equal(t, gpu.StateRunning, inst.State, public)
	}

	open := sim.New(sim.Options{})
	inst, err := open.Launch(context.Background(), launchReq(t, open, gpu.Workspace{}))
	require.NoError(t, err)
	require.Equal(t, gpu.StateRunning, inst.State)
}

// A tarball whose checksum does not match is refused at boot: the instance fails.
func TestWorkspaceChecksumMismatchFailsInstance(t *testing.T) {
	t.Parallel()
	body, _ := tarball(t, map[string]string{"README.md": "hi"})
	srv := serve(t, body)
	s := sim.New(sim.Options{})
	ws := gpu.Workspace{Name: "p", Path: "/workspace/p", URL: srv.URL, SHA256: strings.Repeat("0", 64)}
	inst, err := s.Launch(context.Background(), launchReq(t, s, ws))
	require.NoError(t, err, "the launch is accepted; the instance fails at boot")
	got, err := s.GetInstance(context.Background(), inst.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateFailed, got.State)
	require.Contains(t, got.Error, "SHA-256")
	rec, _ := s.Record(inst.ID)
	require.Empty(t, rec.WorkspaceFiles)

	ws.URL = srv.URL + "/missing"
	srv404 := httptest.NewServer(http.NotFoundHandler())
	defer srv404.Close()
	ws.URL = srv404.URL
	inst, err = s.Launch(context.Background(), launchReq(t, s, ws))
	require.NoError(t, err)
	got, _ = s.GetInstance(context.Background(), inst.ID)
	require.Equal(t, gpu.StateFailed, got.State)
}

// An instance fetches its workspace at boot, whatever became of the call that launched it: a
// caller that gave up (a worker killed mid-launch, found by make chaos) must not leave an
// instance that fails at boot and is launched again.
func TestWorkspaceFetchOutlivesTheLaunchCall(t *testing.T) {
	t.Parallel()
	body, sum := tarball(t, map[string]string{"README.md": "hi"})
	// The caller gives up while the instance is fetching its workspace, however slow the
	// machine is to get there.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
		time.Sleep(200 * time.Millisecond)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	s := sim.New(sim.Options{})
	ws := gpu.Workspace{Name: "p", Path: "/workspace/p", URL: srv.URL, SHA256: sum}
	_, _ = s.Launch(ctx, launchReq(t, s, ws))
	recs := s.Records()
	require.Len(t, recs, 1, "the provider created the instance")
	got, err := s.GetInstance(context.Background(), recs[0].ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateRunning, got.State, got.Error)
	require.Equal(t, []string{"README.md"}, recs[0].WorkspaceFiles)
}

type listed struct {
	ID                string    `json:"id"`
	Name              string    `json:"name"`
	Provider          string    `json:"provider"`
	GPU               string    `json:"gpu"`
	Region            string    `json:"region"`
	Status            string    `json:"status"`
	Image             string    `json:"image"`
	SSHAuthorizedKeys []string  `json:"ssh_authorized_keys"`
	WorkspaceFiles    []string  `json:"workspace_files"`
	CreatedAt         time.Time `json:"created_at"`
}

func TestHandler(t *testing.T) {
	t.Parallel()
	body, sum := tarball(t, map[string]string{"README.md": "hi"})
	ws := gpu.Workspace{Name: "p", Path: "/workspace/p", URL: serve(t, body).URL, SHA256: sum}
	clock := &fakeClock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	s := sim.New(sim.Options{Now: clock.Now})
	first, err := s.Launch(context.Background(), launchReq(t, s, ws))
	require.NoError(t, err)
	clock.Advance(time.Minute)
	r := launchReq(t, s, gpu.Workspace{})
	r.Name, r.SSHPublicKeys = "gpubroker-pod-2", nil
	second, err := s.Launch(context.Background(), r)
	require.NoError(t, err)

	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/dev/gpu/instances", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.NotContains(t, string(raw), secret, "the listing never shows IDE secrets")
	var list []listed
	require.NoError(t, json.Unmarshal(raw, &list))
	require.Len(t, list, 2)
	require.Equal(t, second.ID, list[0].ID, "newest first")
	require.Equal(t, []string{}, list[0].SSHAuthorizedKeys, "an empty list, not null")
	require.Equal(t, first.ID, list[1].ID)
	require.Equal(t, listed{ID: first.ID, Name: "gpubroker-pod-1", Provider: "sim", GPU: "a10", Region: "us-east",
		Status: "running", Image: image, SSHAuthorizedKeys: []string{keyA, keyB}, WorkspaceFiles: []string{"README.md"},
		CreatedAt: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}, list[1])

	resp, err = http.Get(srv.URL + "/dev/gpu/instances")
	require.NoError(t, err)
	html, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	require.Contains(t, string(html), "<table")
	require.Contains(t, string(html), first.ID)
	require.Contains(t, string(html), "alice@laptop")

	// POST …/fail: the instance dies at the provider.
	resp, err = http.Post(srv.URL+"/dev/gpu/instances/"+first.ID+"/fail", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	got, err := s.GetInstance(context.Background(), first.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateFailed, got.State)
	require.NotEmpty(t, got.Error)
	resp, err = http.Post(srv.URL+"/dev/gpu/instances/nope/fail", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// An IDE link opens with its secret and not without: the simulator serves a stand-in IDE per
// instance under the base URL.
func TestIDEOpensOnlyWithSecret(t *testing.T) {
	t.Parallel()
	var s *sim.Sim
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.Handler().ServeHTTP(w, r) }))
	defer srv.Close()
	s = sim.New(sim.Options{IDEBaseURL: srv.URL})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	status := func(u string) int {
		resp, err := client.Get(u)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}

	jup, err := s.Launch(context.Background(), launchReq(t, s, gpu.Workspace{}))
	require.NoError(t, err)
	got, _ := s.GetInstance(context.Background(), jup.ID)
	require.Equal(t, srv.URL+"/dev/gpu/ide/"+jup.ID+"/", got.JupyterURL)
	require.Equal(t, http.StatusOK, status(got.JupyterURL+"?token="+url.QueryEscape(secret)))
	require.Equal(t, http.StatusForbidden, status(got.JupyterURL+"?token=wrong"))
	require.Equal(t, http.StatusUnauthorized, status(got.JupyterURL))

	r := launchReq(t, s, gpu.Workspace{})
	r.Name, r.IDE, r.IDESecret = "gpubroker-pod-cs", gpu.IDECodeServer, "code-pass-1"
	cs, err := s.Launch(context.Background(), r)
	require.NoError(t, err)
	got, _ = s.GetInstance(context.Background(), cs.ID)
	require.Equal(t, srv.URL+"/dev/gpu/ide/"+cs.ID+"/", got.CodeServerURL)
	require.Equal(t, http.StatusUnauthorized, status(got.CodeServerURL))
	login := func(pw string) *http.Response {
		resp, err := client.PostForm(got.CodeServerURL+"login", url.Values{"password": {pw}})
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	require.Equal(t, http.StatusUnauthorized, login("wrong").StatusCode)
	resp := login("code-pass-1")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	req, _ := http.NewRequest("GET", got.CodeServerURL, nil)
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	resp2, err := client.Do(req)
	require.NoError(t, err)
	resp2.Body.Close()
	require.Equal(t, http.StatusOK, resp2.StatusCode)
	require.Equal(t, http.StatusUnauthorized, status(got.CodeServerURL+"?token=code-pass-1"), "code-server takes its password on the login form")

	// A terminated instance's IDE is gone.
	require.NoError(t, s.Terminate(context.Background(), jup.ID))
	require.Equal(t, http.StatusNotFound, status(srv.URL+"/dev/gpu/ide/"+jup.ID+"/?token="+secret))
}
