package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// No container engine runs here, so the image's recipe is proven another way: the Dockerfile's
// own build command, run as it is, makes a static binary without the stand-ins that starts
// and lists its configuration; the Dockerfile builds with go.mod's Go and runs as non-root.
func TestImageRecipe(t *testing.T) {
	t.Parallel()
	docker, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	gomod, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)

	goDirective := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	require.NotNil(t, goDirective)
	require.Contains(t, string(docker), "ARG GO_VERSION="+string(goDirective[1])+"\n", "the image builds with go.mod's Go")
	require.Contains(t, string(docker), "USER nonroot:nonroot")
	require.NotRegexp(t, `(?m)^HEALTHCHECK`, string(docker), "ECS checks /healthz")
	ignore, err := os.ReadFile("../../.dockerignore")
	require.NoError(t, err)
	require.Contains(t, string(ignore), "site/public", "the built site ships to S3, not in the image")

	build := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 .*go build .*) -o /out/gpubroker (\./cmd/gpubroker)$`).FindSubmatch(docker)
	require.NotNil(t, build, "the Dockerfile's build step")
	out := filepath.Join(t.TempDir(), "gpubroker")
	// The step as it is written, run by a shell as RUN does, with only the output moved.
	line := string(build[1]) + " -o " + out + " " + string(build[2])
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = "../.."
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s\n%s", line, msg)

	f, err := elf.Open(out)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "static: no dynamic loader, as distroless/static needs")
	}
	info, err := exec.Command("go", "version", "-m", out).Output()
	require.NoError(t, err)
	require.Contains(t, string(info), "-tags=nostandins")
	require.Contains(t, string(info), "CGO_ENABLED=0")

	list, err := exec.Command(out, "env").Output()
	require.NoError(t, err)
	require.Contains(t, string(list), "DATABASE_URL=")
	require.Contains(t, string(list), "STRIPE_SECRET_KEY=")
}
