// Package images holds the workspace images' shared entrypoint, common/gpubroker-start.sh,
// for the providers that run it outside an image: gpu/lambda installs it on Lambda VMs with
// cloud-init. The Dockerfiles next to it copy the same file into the images.
package images

import _ "embed"

// StartScript is common/gpubroker-start.sh.
//
//go:embed common/gpubroker-start.sh
var StartScript []byte
