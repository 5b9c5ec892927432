package workspaces_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/workspaces"
)

type entry struct {
	name string
	mode int64
	body []byte
}

func untar(t *testing.T, tgz []byte) ([]entry, *gzip.Header) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	require.NoError(t, err)
	hdr := zr.Header
	tr := tar.NewReader(zr)
	var out []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		require.Zero(t, h.Uid)
		require.Zero(t, h.Gid)
		require.Empty(t, h.Uname)
		require.True(t, h.ModTime.Equal(workspaces.ModTime), "mtime %v", h.ModTime)
		body, err := io.ReadAll(tr)
		require.NoError(t, err)
		out = append(out, entry{h.Name, h.Mode, body})
	}
	return out, &hdr
}

func TestPackIsDeterministic(t *testing.T) {
	for _, tpl := range workspaces.Templates() {
		a, sumA, err := workspaces.Pack(tpl)
		require.NoError(t, err)
		b, sumB, err := workspaces.Pack(tpl)
		require.NoError(t, err)
		require.Equal(t, a, b, "same content, same bytes")
		require.Equal(t, sumA, sumB)
		h := sha256.Sum256(a)
		require.Equal(t, hex.EncodeToString(h[:]), sumA)

		entries, gz := untar(t, a)
		require.Empty(t, gz.Name)
		require.True(t, gz.ModTime.IsZero() || gz.ModTime.Unix() == 0, "gzip header has no time")
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.name
			require.Contains(t, []int64{0o644, 0o755}, e.mode, e.name)
		}
		require.True(t, slices.IsSorted(names), "sorted: %v", names)
		require.Less(t, len(a), 100<<10, "starter projects stay small")
	}
	require.ElementsMatch(t, []string{"data-science", "developer"}, workspaces.Templates())
	_, _, err := workspaces.Pack("nope")
	require.Error(t, err)
}

// The tarball holds the files of the template's folder, and nothing from outside it.
func TestPackContent(t *testing.T) {
	tgz, _, err := workspaces.Pack("data-science")
	require.NoError(t, err)
	entries, _ := untar(t, tgz)
	byName := map[string][]byte{}
	for _, e := range entries {
		byName[e.name] = e.body
	}
	require.Contains(t, byName, "README.md")
	require.Contains(t, byName, "data/gpu-notes.txt")
	var nb struct {
		NBFormat int `json:"nbformat"`
		Cells    []struct {
			CellType string   `json:"cell_type"`
			Source   []string `json:"source"`
		} `json:"cells"`
	}
	require.NoError(t, json.Unmarshal(byName["fine-tune.ipynb"], &nb), "a valid notebook")
	require.Equal(t, 4, nb.NBFormat)
	require.NotEmpty(t, nb.Cells)
	lines := bytes.Count(byName["data/gpu-notes.txt"], []byte("\n"))
	require.GreaterOrEqual(t, lines, 200)
	disk, err := os.ReadFile(filepath.Join("data-science", "fine-tune.ipynb"))
	require.NoError(t, err)
	require.Equal(t, disk, byName["fine-tune.ipynb"])

	tgz, _, err = workspaces.Pack("developer")
	require.NoError(t, err)
	entries, _ = untar(t, tgz)
	var names []string
	for _, e := range entries {
		names = append(names, e.name)
	}
	require.Subset(t, names, []string{"README.md", "requirements.txt", "server.py", "test_server.py"})
	for _, n := range names {
		require.NotContains(t, n, "__pycache__")
		require.NotContains(t, n, ".go")
	}
}

func TestWorkspace(t *testing.T) {
	w, err := workspaces.For("data-science", "https://gpubroker.dev/")
	require.NoError(t, err)
	_, sum, err := workspaces.Pack("data-science")
	require.NoError(t, err)
	require.Equal(t, "fine-tune-a-small-lm", w.Name)
	require.Equal(t, "/workspace/fine-tune-a-small-lm", w.Path)
	require.Equal(t, sum, w.SHA256)
	require.Equal(t, "https://gpubroker.dev/workspaces/data-science-"+sum[:12]+".tar.gz", w.URL)
	w, err = workspaces.For("developer", "http://localhost:8080")
	require.NoError(t, err)
	require.Equal(t, "serve-an-open-model", w.Name)
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(workspaces.Handler())
	defer srv.Close()
	w, err := workspaces.For("developer", srv.URL)
	require.NoError(t, err)
	resp, err := http.Get(w.URL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "application/gzip", resp.Header.Get("Content-Type"))
	h := sha256.Sum256(body)
	require.Equal(t, w.SHA256, hex.EncodeToString(h[:]))
	for _, p := range []string{"/workspaces/developer-000000000000.tar.gz", "/workspaces/", "/workspaces/../go.mod"} {
		resp, err := http.Get(srv.URL + p)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 404, resp.StatusCode, p)
	}
}

// WriteDir writes the same files the handler serves, for hugo deploy.
func TestWriteDir(t *testing.T) {
	dir := t.TempDir()
	names, err := workspaces.WriteDir(dir)
	require.NoError(t, err)
	require.Len(t, names, 2)
	for _, tpl := range workspaces.Templates() {
		w, err := workspaces.For(tpl, "")
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(dir, filepath.Base(w.URL)))
		require.NoError(t, err)
		h := sha256.Sum256(b)
		require.Equal(t, w.SHA256, hex.EncodeToString(h[:]))
	}
}
