// Package deploy runs the offline validation of deploy/k8s and the Dockerfile, which
// lives in a module of its own (deploy/validate) so that the Kubernetes libraries it needs
// never enter this module or its binaries. This test makes `go test ./...` run it.
package deploy

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pbft-nats/pbft/internal/topology"
)

func TestDeployManifestsValidate(t *testing.T) {
	root, err := topology.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "deploy", "validate", "run.sh")
	cmd := exec.CommandContext(t.Context(), "bash", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	t.Logf("%s", out)
}
