package images_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu/sim"
	"gpubroker/site"
)

// versionedTag is an exact versioned tag: digits and dots somewhere, never "latest".
var versionedTag = regexp.MustCompile(`^[a-z0-9./-]+:[A-Za-z0-9._-]*\d+\.\d+[A-Za-z0-9._-]*(@sha256:[0-9a-f]{64})?$`)

// Every template runs on a provider-maintained public image that a public registry holds
// (the simulator's fixed list stands for that registry), pinned by an exact versioned tag:
// never a tag of ours nobody pushed, never latest.
func TestTemplatesRunPublicImages(t *testing.T) {
	c, err := site.Catalog()
	require.NoError(t, err)
	require.NotEmpty(t, c.Templates)
	for _, tpl := range c.Templates {
		require.Contains(t, sim.PublicImages, tpl.Image, "template %s: an image no public registry is known to hold", tpl.ID)
		require.Regexp(t, versionedTag, tpl.Image, "template %s", tpl.ID)
		require.NotContains(t, tpl.Image, "latest")
		require.False(t, strings.HasPrefix(tpl.Image, "ghcr.io/gpubroker/"), "template %s: our own registry does not exist", tpl.ID)
		require.True(t, slices.Contains([]string{"jupyter", "code-server"}, tpl.IDE))
	}
}
