// Package deploy runs the offline validation of deploy/k8s and the Dockerfile, which
// lives in a module of its own (deploy/validate) so that the Kubernetes libraries it needs
// never enter this module or its binaries. This test makes `go test ./...` run it.
package deploy

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

func TestDeployManifestsValidate(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "deploy", "validate", "run.sh")
	cmd := exec.CommandContext(t.Context(), "bash", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	t.Logf("%s", out)
}
