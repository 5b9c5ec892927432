package workspaces

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"gpubroker/gpu"
)

// Root is the folder starter projects are unpacked under on every instance.
const Root = "/workspace"

// URLPrefix is the path the tarballs are served under, on the dev server and on the CDN.
const URLPrefix = "/workspaces/"

// ModTime is the modification time of every entry of every tarball.
var ModTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Templates returns the template ids that have a starter project, sorted.
func Templates() []string { return slices.Sorted(maps.Keys(projects)) }

// skip reports files of a template folder that are not part of the project.
func skip(name string) bool {
	base := path.Base(name)
	return base == "__pycache__" || strings.HasSuffix(base, ".pyc") || base == ".DS_Store" ||
		base == ".ipynb_checkpoints" || strings.HasSuffix(base, ".go")
}

// Pack returns the starter project of template as a deterministic .tar.gz and its SHA-256 in
// hex. Entries are sorted by path, with directories before what they hold, and carry fixed
// times (ModTime), uid/gid 0 without names, and modes 0755 (directories, *.sh) or 0644; the
// gzip header has no name and no time.
func Pack(template string) ([]byte, string, error) {
	if _, ok := projects[template]; !ok {
		return nil, "", fmt.Errorf("workspaces: no starter project for template %q", template)
	}
	type file struct {
		name string
		dir  bool
	}
	var entries []file
	err := fs.WalkDir(files, template, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == template {
			return nil
		}
		if skip(p) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		entries = append(entries, file{strings.TrimPrefix(p, template+"/"), d.IsDir()})
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("workspaces: read %s: %w", template, err)
	}
	key := func(f file) string {
		if f.dir {
			return f.name + "/"
		}
		return f.name
	}
	slices.SortFunc(entries, func(a, b file) int { return strings.Compare(key(a), key(b)) })

	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, "", err
	}
	// zw.Header is zero: no name, no comment, MTIME 0.
	tw := tar.NewWriter(zw)
	for _, f := range entries {
		h := &tar.Header{Name: key(f), ModTime: ModTime, Format: tar.FormatUSTAR}
		var body []byte
		switch {
		case f.dir:
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		default:
			body, err = files.ReadFile(template + "/" + f.name)
			if err != nil {
				return nil, "", err
			}
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(body))
			if strings.HasSuffix(f.name, ".sh") {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", fmt.Errorf("workspaces: pack %s/%s: %w", template, f.name, err)
		}
		if _, err := tw.Write(body); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:]), nil
}

// FileName is the tarball's name: <template>-<first 12 hex digits of its SHA-256>.tar.gz, so a
// changed project gets a new URL and CDN caches never serve a stale one.
func FileName(template, sha256hex string) string {
	return template + "-" + sha256hex[:12] + ".tar.gz"
}

type packed struct {
	template, name, sha string
	body                []byte
}

var (
	packOnce sync.Once
	packs    map[string]packed // by file name
	packErr  error
)

func all() (map[string]packed, error) {
	packOnce.Do(func() {
		packs = map[string]packed{}
		for _, tpl := range Templates() {
			body, sum, err := Pack(tpl)
			if err != nil {
				packErr = err
				return
			}
			name := FileName(tpl, sum)
			packs[name] = packed{tpl, name, sum, body}
		}
	})
	return packs, packErr
}

// For returns the gpu.Workspace of template's starter project, served under publicURL (the
// site's origin: PUBLIC_URL). The URL, path and checksum are everything an instance needs.
func For(template, publicURL string) (gpu.Workspace, error) {
	all, err := all()
	if err != nil {
		return gpu.Workspace{}, err
	}
	for _, p := range all {
		if p.template == template {
			name := projects[template]
			return gpu.Workspace{
				Name:   name,
				Path:   Root + "/" + name,
				URL:    strings.TrimRight(publicURL, "/") + URLPrefix + p.name,
				SHA256: p.sha,
			}, nil
		}
	}
	return gpu.Workspace{}, fmt.Errorf("workspaces: no starter project for template %q", template)
}

// Handler serves the tarballs at /workspaces/<name> (mount it at URLPrefix). Names carry the
// checksum, so answers are cacheable for ever.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		all, err := all()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, URLPrefix)
		p, found := all[name]
		if !ok || !found {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("ETag", `"`+p.sha+`"`)
		http.ServeContent(w, r, "", ModTime, bytes.NewReader(p.body))
	})
}

// WriteDir writes every tarball into dir (created if needed), as Handler serves them, and
// returns their file names.
func WriteDir(dir string) ([]string, error) {
	all, err := all()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	names := slices.Sorted(maps.Keys(all))
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), all[n].body, 0o644); err != nil {
			return nil, err
		}
	}
	return names, nil
}
