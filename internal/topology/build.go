package topology

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// ModulePath is the module whose commands Build builds.
const ModulePath = "github.com/pbft-nats/pbft"

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

// ModuleRoot returns the directory of this module's go.mod: the first one above the
// working directory that declares ModulePath, or else the one above this package's
// source file.
func ModuleRoot() (string, error) {
	if wd, err := os.Getwd(); err == nil {
		if root, ok := findModule(wd); ok {
			return root, nil
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		if root, ok := findModule(filepath.Dir(file)); ok {
			return root, nil
		}
	}
	return "", errors.New("topology: no go.mod of " + ModulePath + " above the working directory")
}

func findModule(dir string) (string, bool) {
	for {
		if modulePathOf(filepath.Join(dir, "go.mod")) == ModulePath {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func modulePathOf(gomod string) string {
	f, err := os.Open(gomod)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// AuthConfPath returns the path of deploy/k8s/nats/auth.conf in this module.
func AuthConfPath() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "deploy", "k8s", "nats", "auth.conf"), nil
}

// PasswordEnv is the environment variable auth.conf reads id's NATS password from:
// replica-0 -> REPLICA_0_PASSWORD, gateway -> GATEWAY_PASSWORD.
func PasswordEnv(id string) string {
	return strings.ToUpper(strings.ReplaceAll(id, "-", "_")) + "_PASSWORD"
}
