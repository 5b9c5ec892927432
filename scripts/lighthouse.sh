#!/usr/bin/env bash
# Prints Lighthouse's performance, accessibility, best-practices and SEO scores of every page of
# the built site (each index.html of site/public, and 404.html), on a phone (Lighthouse's
# default, mobile) and on a desktop (--preset=desktop), as one table, using Debian's chromium.
# A benchmark, not a CI gate. LIGHTHOUSE_PAGES='/ /plans/' scores those pages only.
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
# The built site, as it is served in production (behind CloudFront, beside the api), with the
# answers its pages ask for on load: 204 for the page-view beacon (POST /api/pageviews), the
# worker's /offers.json (here the catalog's prices), GET /api/catalog (the catalog) and the
# signed-out answer to GET /api/me. Any other would be a console error Lighthouse scores.
python3 -c 'import datetime, functools, http.server as h, json, sys
data = {k: json.load(open("site/data/%s.json" % k)) for k in ("plans", "templates", "gpus", "regions")}
catalog, gpus = json.dumps(data).encode(), data["gpus"]
offers = json.dumps({"updated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    "offers": [{"gpu": g["gpu"], "region": r["region"], "hourly_cents": r["hourly_cents"], "available": r["available"]} for g in gpus for r in g["regions"]]}).encode()
class H(h.SimpleHTTPRequestHandler):
    def answer(self, code, body):
        self.send_response(code); self.send_header("Content-Type", "application/json"); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        if self.path == "/api/me":
            return self.answer(401, b"{\"error\":\"unauthorized\",\"message\":\"Sign in to continue.\"}")
        if self.path == "/offers.json":
            return self.answer(200, offers)
        if self.path == "/api/catalog":
            return self.answer(200, catalog)
        super().do_GET()
    def do_POST(self):
        self.send_response(204 if self.path == "/api/pageviews" else 404); self.end_headers()
h.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), functools.partial(H, directory="site/public")).serve_forever()' "$port" >/dev/null 2>&1 &
srv=$!
out=$(mktemp -d)
trap 'kill $srv 2>/dev/null; rm -rf "$out"' EXIT
sleep 1

if [ -n "${LIGHTHOUSE_PAGES:-}" ]; then
  read -r -a pages <<<"$LIGHTHOUSE_PAGES"
else
  mapfile -t pages < <(cd site/public && find . -name index.html | sed -e 's|^\.||' -e 's|index\.html$||' | sort)
  [ -f site/public/404.html ] && pages+=(/404.html)
fi

# One JSON report per page and form factor; a run that fails leaves none and shows as "-".
n=0
for page in "${pages[@]}"; do
  n=$((n + 1))
  for form in mobile desktop; do
    preset=()
    [ "$form" = desktop ] && preset=(--preset=desktop)
    echo "lighthouse $n/${#pages[@]} $form $page" >&2
    CHROME_PATH=/usr/bin/chromium "$tools/node_modules/.bin/lighthouse" "http://127.0.0.1:$port$page" "${preset[@]}" \
      --quiet --output=json --output-path="$out/$n-$form.json" --only-categories=performance,accessibility,best-practices,seo \
      --chrome-flags="--headless=new --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync --no-first-run" >/dev/null 2>&1 || true
  done
done

printf '%s\n' "${pages[@]}" | node -e '
const fs = require("fs"), dir = process.argv[1];
const pages = fs.readFileSync(0, "utf8").trim().split("\n");
const cats = ["performance", "accessibility", "best-practices", "seo"];
const scores = (f) => {
  try {
    const c = JSON.parse(fs.readFileSync(f, "utf8")).categories;
    return cats.map((k) => (c[k] && c[k].score !== null ? String(Math.round(c[k].score * 100)) : "-"));
  } catch (e) { return cats.map(() => "-"); }
};
const w = Math.max(4, ...pages.map((p) => p.length));
const row = (cells) => console.log(cells.map((c, i) => (i === 0 ? c.padEnd(w) : c.padStart(5))).join(" "));
console.log(" ".repeat(w) + "  mobile:" + " ".repeat(14) + "desktop:");
row(["page", "perf", "a11y", "bp", "seo", "perf", "a11y", "bp", "seo"]);
pages.forEach((p, i) => row([p, ...scores(`${dir}/${i + 1}-mobile.json`), ...scores(`${dir}/${i + 1}-desktop.json`)]));
' "$out"
# A page that asks not to be indexed fails SEO's "is crawlable" audit, as it means to.
noindex=()
for page in "${pages[@]}"; do
  f=site/public$page
  [ "${f%/}" != "$f" ] && f=${f}index.html
  grep -qE '<meta name="?robots"? content="?noindex' "$f" 2>/dev/null && noindex+=("$page")
done
[ ${#noindex[@]} -eq 0 ] || echo "noindex (SEO below 100 by design): ${noindex[*]}"

bytes=$(cd site/public && { cat index.html; for f in $(grep -oE '(href|src)="?/[^" >]+\.(css|js)' index.html | sed -E 's/^(href|src)="?\///'); do cat "$f"; done; } | wc -c)
echo "landing page HTML+CSS+JS: $bytes bytes"
