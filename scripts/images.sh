#!/usr/bin/env bash
# Build and push the workspace images, then pin them by digest in site/data/templates.json
# (`image`: repo:tag@sha256:…), which the API and the simulator read. `make images` runs it.
#
#   IMAGE_REPO=ghcr.io/gpubroker scripts/images.sh [template…]
#
# Needs docker or podman (CONTAINER_ENGINE picks one), a login to IMAGE_REPO, and python3.
# The tag is the last commit that touched images/, plus -dirty for uncommitted changes there.
set -euo pipefail
cd "$(dirname "$0")/.."

engine="${CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
	if command -v docker >/dev/null; then engine=docker
	elif command -v podman >/dev/null; then engine=podman
	else echo "images: neither docker nor podman is installed" >&2; exit 1
	fi
fi
repo="${IMAGE_REPO:?set IMAGE_REPO, e.g. ghcr.io/gpubroker}"
tag="$(git log -1 --format=%cd-%h --date=format:%Y%m%d -- images)"
[ -n "$tag" ] || tag=dev
git diff --quiet HEAD -- images || tag="$tag-dirty"

templates=("$@")
[ ${#templates[@]} -gt 0 ] || templates=(data-science developer)
for tpl in "${templates[@]}"; do
	ref="$repo/$tpl:$tag"
	echo "== $ref"
	"$engine" build --platform linux/amd64 -f "images/$tpl/Dockerfile" -t "$ref" images
	digestfile="$(mktemp)"
	if [ "$engine" = podman ]; then
		podman push --digestfile "$digestfile" "$ref"
		digest="$(cat "$digestfile")"
	else
		docker push "$ref" >/dev/null
		digest="$(docker inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" | grep -m1 "^$repo/$tpl@" | cut -d@ -f2)"
	fi
	rm -f "$digestfile"
	[[ "$digest" == sha256:* ]] || { echo "images: no digest for $ref" >&2; exit 1; }
	pinned="$ref@$digest"
	python3 - "$tpl" "$pinned" <<'PY'
import json, sys
tpl, image = sys.argv[1], sys.argv[2]
path = "site/data/templates.json"
data = json.load(open(path))
for t in data:
    if t["id"] == tpl:
        t["image"] = image
        break
else:
    sys.exit(f"images: no template {tpl} in {path}")
open(path, "w").write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
PY
	echo "pinned $pinned"
done
echo "Commit site/data/templates.json: the API launches exactly these images."
