package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

const repoRoot = "../.."

// buildInputs lists, relative to the repository root, every file that building
// cmd/replica and cmd/gateway reads from the main module: go.mod, go.sum, and the Go and
// embedded files of each package they depend on.
func buildInputs(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Module", "./cmd/replica", "./cmd/gateway")
	cmd.Dir = repoRoot
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	abs, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			Dir                 string
			GoFiles, EmbedFiles []string
			Module              *struct{ Path string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != "github.com/pbft-nats/pbft" {
			continue
		}
		rel, err := filepath.Rel(abs, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			files = append(files, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	return files
}

// pbftCommands returns the programs the manifests start from the pbft image.
func pbftCommands(t *testing.T) []string {
	t.Helper()
	objs, problems := Load(render(t, tree(t)))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	var cmds []string
	for _, o := range objs {
		var spec *corev1.PodSpec
		switch v := o.Obj.(type) {
		case *appsv1.StatefulSet:
			spec = &v.Spec.Template.Spec
		case *appsv1.Deployment:
			spec = &v.Spec.Template.Spec
		default:
			continue
		}
		for _, c := range append(spec.InitContainers, spec.Containers...) {
			if imageName(c.Image) != "pbft" {
				continue
			}
			if len(c.Command) == 0 {
				t.Errorf("%s container %q: no command: the image has two programs", o, c.Name)
				continue
			}
			cmds = append(cmds, c.Command[0])
		}
	}
	if len(cmds) != 2 {
		t.Fatalf("programs started from the pbft image: %v, want /replica and /gateway", cmds)
	}
	return cmds
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDockerfile(t *testing.T) {
	cmds := pbftCommands(t)
	for _, p := range CheckDockerfile(readRepoFile(t, "Dockerfile"), cmds) {
		t.Error(p)
	}
	inputs := buildInputs(t)
	for _, want := range []string{"go.mod", "cmd/replica/main.go", "cmd/gateway/main.go", "pbft/config/config.go"} {
		if !contains(inputs, want) {
			t.Errorf("build inputs %v lack %s", inputs, want)
		}
	}
	for _, p := range CheckDockerignore(readRepoFile(t, ".dockerignore"), inputs) {
		t.Error(p)
	}
}

func TestDockerChecksBite(t *testing.T) {
	dockerfile := readRepoFile(t, "Dockerfile")
	ignore := readRepoFile(t, ".dockerignore")
	cmds := []string{"/replica", "/gateway"}
	inputs := []string{"go.mod", "cmd/replica/main.go", "pbft/gateway/web/index.html", "pbft/config/config.go"}
	for _, c := range []struct {
		name, old, new, want string
	}{
		{"root user", "USER 65532:65532", "USER root", `USER "root" is not a numeric non-root uid`},
		{"uid 0", "USER 65532:65532", "USER 0", `USER "0" is not a numeric non-root uid`},
		{"cgo", "ENV CGO_ENABLED=0 ", "ENV ", "CGO_ENABLED=0"},
		{"fat base", "FROM gcr.io/distroless/static-debian12:nonroot", "FROM debian:12", "neither scratch nor distroless"},
		{"missing program", "COPY --from=build /out/gateway /gateway\n", "", "the manifests run /gateway"},
	} {
		if !strings.Contains(dockerfile, c.old) {
			t.Fatalf("%s: Dockerfile lacks %q", c.name, c.old)
		}
		problems := CheckDockerfile(strings.Replace(dockerfile, c.old, c.new, 1), cmds)
		if !strings.Contains(strings.Join(problems, "\n"), c.want) {
			t.Errorf("%s: want a problem with %q, got %v", c.name, c.want, problems)
		}
	}
	if p := CheckDockerignore(ignore, inputs); len(p) > 0 {
		t.Fatalf("the real .dockerignore: %v", p)
	}
	for pat, want := range map[string]string{
		"pbft":          "excludes pbft/config/config.go",
		"**/*.html":     "uses **",
		"*/gateway/web": "excludes pbft/gateway/web/index.html",
		"go.*":          "excludes go.mod",
	} {
		problems := CheckDockerignore(ignore+pat+"\n", inputs)
		if !strings.Contains(strings.Join(problems, "\n"), want) {
			t.Errorf(".dockerignore + %q: want a problem with %q, got %v", pat, want, problems)
		}
	}
	if p := CheckDockerignore(ignore+"pbft\n!pbft\n", inputs); len(p) > 0 {
		t.Errorf("a re-included directory is reported: %v", p)
	}
}
