// Package architecture checks that docs/architecture.md tells the truth: each package's
// imports within the module are the ones its table lists, and no package depends, even
// indirectly, on one its row forbids.
package architecture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/pbft-nats/pbft"

// rule is one row of the import-rules table.
type rule struct {
	pkg     string
	imports []string
	never   []string
}

var backticked = regexp.MustCompile("`([^`]+)`")

// readRules parses the table of docs/architecture.md: rows of the form
// | `pkg` | `a` `b` | `c` |, with — for none.
func readRules(t *testing.T, path string) []rule {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rules []rule
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cells := strings.Split(strings.Trim(strings.TrimSpace(sc.Text()), "|"), "|")
		if len(cells) != 3 || !strings.HasPrefix(strings.TrimSpace(cells[0]), "`") {
			continue
		}
		names := func(cell string) []string {
			var out []string
			for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
				out = append(out, m[1])
			}
			slices.Sort(out)
			return out
		}
		pkg := names(cells[0])
		if len(pkg) != 1 {
			t.Fatalf("%s: row %q names %d packages", path, sc.Text(), len(pkg))
		}
		rules = append(rules, rule{pkg: pkg[0], imports: names(cells[1]), never: names(cells[2])})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rules
}

// listed is what go list says of one package.
type listed struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// goList returns go list's view of pkgs (relative to the module) by import path.
func goList(t *testing.T, root string, pkgs []string) map[string]listed {
	args := []string{"list", "-json"}
	for _, p := range pkgs {
		args = append(args, "./"+p)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	got := map[string]listed{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var l listed
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		got[strings.TrimPrefix(l.ImportPath, module+"/")] = l
	}
	return got
}

// local keeps the packages of this module, relative to it.
func local(paths []string) []string {
	var out []string
	for _, p := range paths {
		if p == module {
			out = append(out, ".")
		} else if rel, ok := strings.CutPrefix(p, module+"/"); ok {
			out = append(out, rel)
		}
	}
	slices.Sort(out)
	return out
}

func TestDocumentedImportRules(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	rules := readRules(t, filepath.Join(root, "docs", "architecture.md"))
	if len(rules) < 10 {
		t.Fatalf("only %d rows in the import-rules table", len(rules))
	}
	var pkgs []string
	for _, r := range rules {
		pkgs = append(pkgs, r.pkg)
	}
	got := goList(t, root, pkgs)
	for _, r := range rules {
		l, ok := got[r.pkg]
		if !ok {
			t.Errorf("%s: no such package", r.pkg)
			continue
		}
		if imports := local(l.Imports); !slices.Equal(imports, r.imports) {
			t.Errorf("%s imports %v; docs/architecture.md says %v", r.pkg, imports, r.imports)
		}
		deps := local(l.Deps)
		for _, never := range r.never {
			if slices.Contains(deps, never) {
				t.Errorf("%s depends on %s, which docs/architecture.md forbids", r.pkg, never)
			}
		}
	}
}

// The rules checker itself sees a violation: a row forbidding what a package does depend
// on is reported (so that a table nobody reads correctly cannot pass silently).
func TestRulesCatchAViolation(t *testing.T) {
	doc := filepath.Join(t.TempDir(), "architecture.md")
	table := "| package | imports | never |\n| --- | --- | --- |\n| `pbft/gateway/embedded` | `pbft` | `pbft/node` |\n"
	if err := os.WriteFile(doc, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	rules := readRules(t, doc)
	if len(rules) != 1 || rules[0].pkg != "pbft/gateway/embedded" || !slices.Equal(rules[0].never, []string{"pbft/node"}) {
		t.Fatalf("parsed %+v", rules)
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	l := goList(t, root, []string{rules[0].pkg})[rules[0].pkg]
	if !slices.Contains(local(l.Deps), "pbft/node") || slices.Equal(local(l.Imports), rules[0].imports) {
		t.Fatalf("the embedded cluster should depend on pbft/node and import more than pbft: %v", local(l.Imports))
	}
}
