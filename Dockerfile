# syntax=docker/dockerfile:1
# One image with both programs, /replica and /gateway (deploy/k8s picks one per
# container with `command`). Built static (CGO_ENABLED=0) and run as the numeric non-root
# user 65532 on distroless/static: no shell, no package manager, nothing but the binaries,
# CA certificates and time zone data.
#
# Needs BuildKit (RUN --mount=type=cache): the default builder since Docker 23; with an
# older docker, set DOCKER_BUILDKIT=1. The entrypoint is /replica, so arguments go to it
# (--user lets it write into your directory):
#
#   docker build -t pbft:latest .
#   mkdir -p keys && docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/keys:/keys" pbft:latest keygen -dir /keys replica-0 replica-1 replica-2 replica-3 gateway

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS=linux TARGETARCH=amd64
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/replica ./cmd/gateway

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/replica /replica
COPY --from=build /out/gateway /gateway
USER 65532:65532
# The replica's HTTP port (PBFT_HTTP_ADDR=:9090) and the gateway's (:8080).
EXPOSE 9090 8080
ENTRYPOINT ["/replica"]
