package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the repository, from this package's directory.
const repoRoot = "../.."

var (
	fuzzFunc = regexp.MustCompile(`(?m)^func (Fuzz\w+)\(\w+ \*testing\.F\)`)
	// fuzzCommand is a README line that runs one fuzz target of one package.
	fuzzCommand = regexp.MustCompile(`(?m)^go test -run '\^\$' -fuzz '\^(Fuzz\w+)\$'[^#\n]*?\s(\./\S*)`)
)

// fuzzTargets finds every fuzz target of the repository's test files, as
// "FuzzX ./package".
func fuzzTargets(t *testing.T) map[string]bool {
	t.Helper()
	targets := map[string]bool{}
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			// Hidden directories (.git, .local-cluster) and testdata hold no packages.
			if path != repoRoot && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoRoot, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := "./" + filepath.ToSlash(rel)
		if rel == "." {
			pkg = "."
		}
		for _, m := range fuzzFunc.FindAllStringSubmatch(string(src), -1) {
			targets[m[1]+" "+pkg] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return targets
}

// The README's fuzzing section has one command per fuzz target, each naming the
// target's package, and no command for a target that does not exist.
func TestREADMEListsEveryFuzzTarget(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	targets := fuzzTargets(t)
	if len(targets) == 0 {
		t.Fatal("no fuzz targets found: the scan is broken")
	}
	listed := map[string]int{}
	for _, m := range fuzzCommand.FindAllStringSubmatch(string(readme), -1) {
		listed[m[1]+" "+m[2]]++
	}
	for target := range targets {
		name, pkg, _ := strings.Cut(target, " ")
		switch listed[target] {
		case 0:
			t.Errorf("README.md lacks: go test -run '^$' -fuzz '^%s$' -fuzztime 5m %s", name, pkg)
		case 1:
		default:
			t.Errorf("README.md lists %s of %s %d times", name, pkg, listed[target])
		}
	}
	for cmd := range listed {
		if !targets[cmd] {
			name, pkg, _ := strings.Cut(cmd, " ")
			t.Errorf("README.md runs %s in %s, which has no such fuzz target", name, pkg)
		}
	}
}
