package topology

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// ModulePath is the module whose commands Build builds.
const ModulePath = "github.com/pbft-nats/pbft"

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
