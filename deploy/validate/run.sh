#!/usr/bin/env bash
# Offline validation of deploy/k8s and the Dockerfile (see deploy/README.md): the Go
# tests of this module render the kustomization in-process (krusty), decode every object
# strictly into its k8s.io/api type and check it against config.Settings, the NATS
# server's configuration parser and the Dockerfile. Where kubectl is installed, its
# rendering must be identical and pass the same checks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

go test -count=1 ./...

if command -v kubectl >/dev/null 2>&1; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  kubectl kustomize ../k8s >"$tmp/kubectl.yaml"
  go run ./cmd/check -render ../k8s >"$tmp/krusty.yaml"
  if ! diff -u "$tmp/kubectl.yaml" "$tmp/krusty.yaml"; then
    echo "run.sh: kubectl kustomize and the in-process rendering differ (above)" >&2
    exit 1
  fi
  go run ./cmd/check "$tmp/kubectl.yaml"
else
  echo "run.sh: kubectl is not installed: only the in-process rendering was checked"
fi
