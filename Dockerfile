# syntax=docker/dockerfile:1
# The gpubroker image: one static binary (api, worker and migrate are its subcommands) on a
# distroless base with CA certificates and tzdata, running as a non-root user. The site is not
# in it (it ships to S3); ECS checks /healthz, so there is no HEALTHCHECK. `make image` builds
# it; CI builds the binary with the same flags and runs it (cmd/gpubroker/image_test.go).

# The Go of go.mod's go directive (the image test checks they agree).
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static (no cgo), without the dev stand-ins (-tags nostandins), reproducible paths.
RUN CGO_ENABLED=0 GOOS=linux go build -tags nostandins -trimpath -ldflags="-s -w" -o /out/gpubroker ./cmd/gpubroker

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gpubroker /usr/local/bin/gpubroker
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gpubroker"]
CMD ["api"]
