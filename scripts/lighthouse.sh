#!/usr/bin/env bash
# Prints Lighthouse performance and accessibility scores for the landing, plans and get-started
# pages, served from the built site, using Debian's chromium. A benchmark, not a CI gate.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d site/public ] || { echo "build the site first: make site" >&2; exit 1; }
command -v chromium >/dev/null || { echo "install chromium: apt-get install -y chromium" >&2; exit 1; }
tools=.data/lighthouse
if [ ! -x "$tools/node_modules/.bin/lighthouse" ]; then
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-audit --no-fund --silent lighthouse@13 >&2
fi
port=${LIGHTHOUSE_PORT:-8099}
# The built site, and 204 for the page-view beacon (POST /api/pageviews), as the api answers
# behind CloudFront: without it the beacon's 501 is a console error Lighthouse scores.
python3 -c 'import functools, http.server as h, sys
class H(h.SimpleHTTPRequestHandler):
    def do_POST(self):
        self.send_response(204 if self.path == "/api/pageviews" else 404); self.end_headers()
h.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), functools.partial(H, directory="site/public")).serve_forever()' "$port" >/dev/null 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null' EXIT
sleep 1
echo "page performance accessibility best-practices seo"
for page in / /plans/ /get-started/; do
  out=$(mktemp)
  CHROME_PATH=/usr/bin/chromium "$tools/node_modules/.bin/lighthouse" "http://127.0.0.1:$port$page" \
    --quiet --output=json --output-path="$out" --only-categories=performance,accessibility,best-practices,seo \
    --chrome-flags="--headless=new --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync --no-first-run" >/dev/null 2>&1 || true
  node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));const c=r.categories;console.log(process.argv[2],...["performance","accessibility","best-practices","seo"].map(k=>Math.round(c[k].score*100)))' "$out" "$page"
  rm -f "$out"
done
bytes=$(cd site/public && { cat index.html; for f in $(grep -oE '(href|src)="?/[^" >]+\.(css|js)' index.html | sed -E 's/^(href|src)="?\///'); do cat "$f"; done; } | wc -c)
echo "landing page HTML+CSS+JS: $bytes bytes"
