package topology

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

// Binaries are the paths of the built executables.
type Binaries struct {
	Replica    string // cmd/replica
	Gateway    string // cmd/gateway
	NATSServer string // github.com/nats-io/nats-server/v2
}

var (
	buildMu  sync.Mutex
	built    *Binaries
	buildDir string
)

// Build builds cmd/replica, cmd/gateway and nats-server into a temporary directory, once
// per process: later calls return the same binaries (a failed build is retried). The
// module is found from the working directory upwards, or else from this package's source
// directory. Call RemoveBuilds (for example from TestMain) to delete the directory.
func Build(ctx context.Context) (Binaries, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if built != nil {
		return *built, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return Binaries{}, err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, serr := os.Stat(goTool); serr != nil {
			return Binaries{}, fmt.Errorf("topology: no go tool: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "pbft-topology-bin-")
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{
		Replica:    filepath.Join(dir, "replica"),
		Gateway:    filepath.Join(dir, "gateway"),
		NATSServer: filepath.Join(dir, "nats-server"),
	}
	for _, s := range []struct{ out, pkg string }{
		{b.Replica, "./cmd/replica"},
		{b.Gateway, "./cmd/gateway"},
		{b.NATSServer, "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.CommandContext(ctx, goTool, "build", "-o", s.out, s.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			_ = os.RemoveAll(dir)
			return Binaries{}, fmt.Errorf("topology: go build -o %s %s: %v\n%s", filepath.Base(s.out), s.pkg, err, out)
		}
	}
	built, buildDir = &b, dir
	return b, nil
}

// RemoveBuilds deletes what Build built; a later Build builds again.
func RemoveBuilds() error {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir == "" {
		return nil
	}
	err := os.RemoveAll(buildDir)
	built, buildDir = nil, ""
	return err
}

// RunAndRemoveBuilds runs a test binary's tests (m.Run) and then RemoveBuilds, and
// returns run's exit code: TestMain is os.Exit(topology.RunAndRemoveBuilds(m.Run)).
func RunAndRemoveBuilds(run func() int) int {
	code := run()
	_ = RemoveBuilds()
	return code
}
