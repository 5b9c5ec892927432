// Package workspaces holds the starter projects of the workspace templates (one folder per
// template id of site/data/templates.json) and packs each into a deterministic .tar.gz: the
// same files always give the same bytes, so the SHA-256 a launch carries (gpu.Workspace)
// identifies the content and the instance can check what it downloaded.
//
// The tarballs are served by Handler at /workspaces/<template>-<sha12>.tar.gz in `gpubroker
// dev`, and written by WriteDir (go run ./workspaces/cmd/pack) into site/public/workspaces/
// after `make site`, so `hugo deploy` puts them on the CDN at PUBLIC_URL/workspaces/<name>.
package workspaces

import "embed"

// files are the template folders. all: keeps dot files (.vscode/).
//
//go:embed all:data-science all:developer
var files embed.FS

// projects maps a template id to its starter project's name, which is also the folder it
// lands in under Root on the instance. site/data/templates.json repeats them (a test checks).
var projects = map[string]string{
	"data-science": "fine-tune-a-small-lm",
	"developer":    "serve-an-open-model",
}
