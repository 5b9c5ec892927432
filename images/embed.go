// Package images holds the bootstrap of every workspace, common/gpubroker-start.sh: there is no
// image of ours. Container providers run a provider-maintained public image (RunPod's official
// PyTorch image) with StartCommand, which downloads the script from the api (Handler) and runs
// it only if its SHA-256 is StartScriptSHA256; gpu/lambda installs it on Lambda VMs with
// cloud-init, from this embedded copy.
package images

import _ "embed"

// StartScript is common/gpubroker-start.sh.
//
//go:embed common/gpubroker-start.sh
var StartScript []byte
