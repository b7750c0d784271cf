#!/usr/bin/env bash
# Offline validation of deploy/k8s (with deploy/k8s/admin) and the Dockerfile (see deploy/README.md): the Go
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
  for k in k8s k8s/admin; do
    f="$tmp/$(echo "$k" | tr / -)"
    kubectl kustomize "../$k" >"$f.kubectl.yaml"
    go run ./cmd/check -render "../$k" >"$f.krusty.yaml"
    if ! diff -u "$f.kubectl.yaml" "$f.krusty.yaml"; then
      echo "run.sh: kubectl kustomize ../$k and the in-process rendering differ (above)" >&2
      exit 1
    fi
  done
  # The base and the administrator's Job are one deployment: checked together.
  go run ./cmd/check "$tmp/k8s.kubectl.yaml" "$tmp/k8s-admin.kubectl.yaml"
else
  echo "run.sh: kubectl is not installed: only the in-process rendering was checked"
fi
