# GPU Broker. `make dev` runs the whole product locally; `make test` runs every test.
# Without DATABASE_URL both start (or reuse) a project-local PostgreSQL under .data/.
# On a fresh Debian machine with Go, both first install the packages they need
# (scripts/deps.sh: apt-get as root, else the command to run); Go tools come from tools/go.mod.

SHELL := /bin/bash
HUGO  := go tool -modfile=tools/go.mod hugo
# The database URL, in a recipe: DATABASE_URL, or the local cluster (failing loudly if it can't start).
DB = url="$${DATABASE_URL:-}"; [ -n "$$url" ] || url=$$(scripts/pg.sh) || exit 1

.PHONY: dev test deps deps-dev workspace-check provider-check site build build-prod image migrate db-stop lint lighthouse bench load chaos scale fuzz site-deploy clean

# The Debian packages: `deps-dev` what make dev needs (PostgreSQL), `deps` everything make test
# needs. A fast no-op when they are installed.
deps:
	@scripts/deps.sh test
deps-dev:
	@scripts/deps.sh dev

build:
	go build -o bin/gpubroker ./cmd/gpubroker

# The container image (Dockerfile) with docker or podman; IMAGE names it.
IMAGE ?= gpubroker:$(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
image:
	@engine=$$(command -v docker || command -v podman) || { echo "make image needs docker or podman"; exit 1; }; \
	$$engine build -t $(IMAGE) .

# The production binary: no Stripe stand-in linked in (dev then needs a real Stripe key).
build-prod:
	CGO_ENABLED=0 go build -tags nostandins -trimpath -o bin/gpubroker ./cmd/gpubroker

# The starter projects' tarballs go next to the site, so `hugo deploy` puts them on the CDN at
# PUBLIC_URL/workspaces/<template>-<sha12>.tar.gz (the dev server serves the same bytes).
site:
	$(HUGO) --source site --minify --cleanDestinationDir --logLevel warn
	@go run ./workspaces/cmd/pack site/public/workspaces >/dev/null

# Hugo rebuilds site/public on every change while the server runs; reload the page to see it.
# The database starts while the site and the binary build, and those two build side by side.
dev: deps-dev
	@if [ -z "$${DATABASE_URL:-}" ]; then mkdir -p .data; scripts/pg.sh >.data/dev-url & pg=$$!; fi; \
	$(MAKE) --no-print-directory -j2 site build || exit 1; \
	url="$${DATABASE_URL:-}"; \
	if [ -z "$$url" ]; then wait $$pg && url=$$(cat .data/dev-url) || exit 1; fi; \
	DATABASE_URL="$$url" ./bin/gpubroker migrate || exit 1; \
	$(HUGO) --source site --watch --logLevel warn >/dev/null 2>&1 & hugo=$$!; \
	trap 'kill $$hugo 2>/dev/null' EXIT INT TERM; \
	DATABASE_URL="$$url" SITE_DIR=site/public ./bin/gpubroker dev

migrate: build
	@$(DB); DATABASE_URL="$$url" ./bin/gpubroker migrate

# Every test: unit, store, jobs, HTTP through the real router, stripe-mock (a tool of
# tools/go.mod, which the test builds with go tool), the browser journey in headless Chromium
# and the workspace image's boot. The site is built first because the browser test serves it.
test: deps site
	@$(DB); \
	gofmt_out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.data/*')); \
	if [ -n "$$gofmt_out" ]; then echo "gofmt needed: $$gofmt_out"; exit 1; fi; \
	go vet ./... && \
	go tool -modfile=tools/go.mod staticcheck ./... && \
	go build -tags nostandins -o /dev/null ./cmd/gpubroker && \
	go tool -modfile=tools/go.mod promtool check rules ops/alerts.yml && \
	go tool -modfile=tools/go.mod promtool test rules ops/alerts_test.yml && \
	if command -v terraform >/dev/null; then terraform fmt -check -recursive terraform; \
	else echo "terraform not installed: skipping terraform fmt -check"; fi && \
	scripts/pg-port-test.sh && \
	DATABASE_URL="$$url" SITE_DIR=$(CURDIR)/site/public go test -race -count=1 -timeout 15m ./...

# The workspace image's first boot, run for real on this machine (images/: cloud-init, sshd,
# Jupyter Server, and the pinned code-server installed from the npm registry and started; its
# downloads are kept in .cache/code-server/); make test runs it too, with everything else.
workspace-check: deps
	go test -count=1 -run TestWorkspaceCheck -v ./images/

# Launch the cheapest offer of each template at each provider with keys set (RUNPOD_API_KEY,
# LAMBDA_API_KEY + LAMBDA_SSH_KEY_NAME), wait until usable, SSH in, open the IDE, terminate and
# print timings and cost (real money). Without keys it runs the same steps on the simulator.
provider-check:
	go run ./cmd/providercheck

bench:
	@$(DB); DATABASE_URL="$$url" go test -run '^$$' -bench . -benchtime 100x ./cmd/gpubroker/

# Native Go fuzzing of the endpoints anyone can call (webhook, checkout, tokens) and of the ops
# routes and the River UI behind their guard, each for FUZZTIME. Plain `go test` (and `make test`) runs only the seeds in api/testdata/fuzz/; a
# failing input found here is saved there too: commit it with the fix.
FUZZTIME ?= 30s
FUZZ_TARGETS := FuzzWebhook FuzzCheckout FuzzTokens FuzzOps
fuzz:
	@$(DB); \
	for t in $(FUZZ_TARGETS); do \
		echo "== $$t ($(FUZZTIME))"; \
		DATABASE_URL="$$url" go test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./api/ || exit 1; \
	done

lighthouse: site
	scripts/lighthouse.sh

# Upload the site with `hugo deploy` (a Hugo built with the withdeploy tag, at the pinned
# version). SITE_BUCKET and CLOUDFRONT_DISTRIBUTION_ID come from `terraform output`.
site-deploy: site
	@[ -n "$(SITE_BUCKET)" ] && [ -n "$(CLOUDFRONT_DISTRIBUTION_ID)" ] && [ -n "$(AWS_REGION)" ] || \
		{ echo "set SITE_BUCKET, CLOUDFRONT_DISTRIBUTION_ID and AWS_REGION (see terraform output)"; exit 1; }
	go build -modfile=tools/go.mod -tags withdeploy -o bin/hugo-deploy github.com/gohugoio/hugo
	HUGO_DEPLOYMENT_TARGETS='[{name: production, url: "s3://$(SITE_BUCKET)?region=$(AWS_REGION)", cloudFrontDistributionID: $(CLOUDFRONT_DISTRIBUTION_ID), exclude: offers.json}]' \
		bin/hugo-deploy deploy --source site --target production --invalidateCDN

db-stop:
	scripts/pg.sh stop

clean:
	rm -rf bin site/public site/resources/_gen

# Webhook ingest under load against the raw PostgreSQL floor, on a durable throwaway cluster
# (cmd/loadgen; about 2 minutes). LOADFLAGS passes options, e.g. LOADFLAGS='-rounds 1'.
load: build
	go build -o bin/loadgen ./cmd/loadgen
	bin/loadgen -gpubroker bin/gpubroker -profile bin/load-api.pprof $(LOADFLAGS)

# The production processes under faults (cmd/chaos/internal/chaos): its own PostgreSQL, the Stripe and
# RunPod stand-ins, one api and two workers of the production binary, 50 customers while
# workers are killed, PostgreSQL crashes once and faults are injected; then the ledgers are
# checked. Prints one line and exits 1 on any violation. make test runs a short version
# (TestChaosShort). CHAOSFLAGS passes options, e.g. CHAOSFLAGS='-customers 100 -seed 42'.
chaos: build-prod
	go run ./cmd/chaos -gpubroker bin/gpubroker $(CHAOSFLAGS)

# The production processes on a throwaway cluster seeded with SCALE times a year of a busy
# service (SCALE=1: 100k accounts, 500k orders, 3M audit events …; it checks free disk first):
# every customer and ops route, the ops collector's queries and the periodic jobs timed, and
# the statements over 100 ms with their plans (cmd/scale). make test runs it at SCALE=0.01
# (TestScaleTiny). SCALEFLAGS passes options, e.g. SCALEFLAGS='-n 20 -gate'.
SCALE ?= 1
scale: build-prod
	go run ./cmd/scale -gpubroker bin/gpubroker -scale $(SCALE) $(SCALEFLAGS)
