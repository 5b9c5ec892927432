package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// digestLine is what the check prints about the digest of image at p: resolved from the
// registry for a container provider, nothing to resolve on a Lambda VM, and not resolved
// against the simulator, which has no registry.
func digestLine(ctx context.Context, p interface{ Name() string }, image string) string {
	switch p.Name() {
	case "lambda":
		return "digest: none (a Lambda VM runs Lambda Stack, no image)"
	case "runpod":
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		d, err := resolveDigest(ctx, &http.Client{Timeout: 20 * time.Second}, image)
		if err != nil {
			return "digest: not resolved (" + err.Error() + ")"
		}
		return "digest: " + d
	default:
		return "digest: not resolved (simulator)"
	}
}

// manifestTypes are the manifests a tag may name: a multi-platform index or list, or one
// image's manifest. The digest of whichever the registry holds is what the tag pins.
var manifestTypes = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// resolveDigest asks ref's registry (Distribution API v2) for the digest its tag names now:
// the Docker-Content-Digest of a manifest HEAD, after the bearer-token challenge registries
// answer anonymous pulls with. A reference pinned by digest is its own answer.
func resolveDigest(ctx context.Context, hc *http.Client, ref string) (string, error) {
	if _, d, ok := strings.Cut(ref, "@"); ok {
		return d, nil
	}
	host, repo, tag, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	manifest := "https://" + host + "/v2/" + repo + "/manifests/" + url.PathEscape(tag)
	head := func(token string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, manifest, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", manifestTypes)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		return resp, nil
	}
	resp, err := head("")
	if err != nil {
		return "", err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		token, err := pullToken(ctx, hc, resp.Header.Get("WWW-Authenticate"))
		if err != nil {
			return "", err
		}
		if resp, err = head(token); err != nil {
			return "", err
		}
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HEAD %s: HTTP %d", manifest, resp.StatusCode)
	}
	d := resp.Header.Get("Docker-Content-Digest")
	if !strings.HasPrefix(d, "sha256:") {
		return "", fmt.Errorf("HEAD %s: no Docker-Content-Digest", manifest)
	}
	return d, nil
}

// pullToken follows a `Bearer realm="…",service="…",scope="…"` challenge to an anonymous token.
func pullToken(ctx context.Context, hc *http.Client, challenge string) (string, error) {
	params, ok := strings.CutPrefix(challenge, "Bearer ")
	if !ok {
		return "", fmt.Errorf("registry challenge %q is not Bearer", challenge)
	}
	var realm string
	q := url.Values{}
	for _, kv := range strings.Split(params, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		v = strings.Trim(v, `"`)
		switch k {
		case "realm":
			realm = v
		case "service", "scope":
			q.Set(k, v)
		}
	}
	if realm == "" {
		return "", fmt.Errorf("registry challenge %q has no realm", challenge)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm+"?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("registry token: HTTP %d", resp.StatusCode)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("registry token: %w", err)
	}
	if body.Token == "" {
		body.Token = body.AccessToken
	}
	return body.Token, nil
}

// parseRef splits an image reference into registry host, repository and tag, as docker reads
// it: a first part with a dot or a colon (or localhost) is a host, else Docker Hub, whose
// one-part names live under library/. A reference without a tag is refused: latest is never
// what a template means.
func parseRef(ref string) (host, repo, tag string, err error) {
	host, rest := "registry-1.docker.io", ref
	if first, after, ok := strings.Cut(ref, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		host, rest = first, after
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 || strings.Contains(rest[i:], "/") {
		return "", "", "", errors.New("image " + ref + " has no tag")
	}
	repo, tag = rest[:i], rest[i+1:]
	if host == "registry-1.docker.io" && !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	return host, repo, tag, nil
}
