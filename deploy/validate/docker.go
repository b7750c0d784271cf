package validate

import (
	"path"
	"regexp"
	"strings"
)

// dockerInstruction is one instruction of a Dockerfile, continuation lines joined.
type dockerInstruction struct {
	cmd, args string
}

func parseDockerfile(text string) []dockerInstruction {
	var out []dockerInstruction
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if cur.Len() == 0 && (t == "" || strings.HasPrefix(t, "#")) {
			continue
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\") + " ")
			continue
		}
		cur.WriteString(t)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

var numericUser = regexp.MustCompile(`^([0-9]+)(:[0-9]+)?$`)

// CheckDockerfile checks the image the manifests run: a multi-stage build of static
// binaries (CGO_ENABLED=0) into a distroless or scratch final stage that runs as a
// numeric non-root user and contains every program the manifests start (commands).
func CheckDockerfile(text string, commands []string) []string {
	var problems []string
	var stages [][]dockerInstruction
	for _, in := range parseDockerfile(text) {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if len(stages) < 2 {
		return append(problems, "Dockerfile: not a multi-stage build")
	}
	static := false
	for _, st := range stages[:len(stages)-1] {
		for _, in := range st {
			if (in.cmd == "ENV" || in.cmd == "RUN" || in.cmd == "ARG") && regexp.MustCompile(`\bCGO_ENABLED=0\b`).MatchString(in.args) {
				static = true
			}
		}
	}
	if !static {
		problems = append(problems, "Dockerfile: the build stage does not set CGO_ENABLED=0 (static binaries)")
	}
	final := stages[len(stages)-1]
	base := strings.Fields(final[0].args)
	image := ""
	for _, f := range base {
		if !strings.HasPrefix(f, "--") {
			image = f
			break
		}
	}
	if image != "scratch" && !strings.Contains(image, "distroless") {
		problems = append(problems, "Dockerfile: final image "+image+" is neither scratch nor distroless")
	}
	user := ""
	copied := map[string]bool{}
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "COPY", "ADD":
			f := strings.Fields(in.args)
			if len(f) > 0 {
				copied[path.Clean(f[len(f)-1])] = true
			}
		case "RUN":
			problems = append(problems, "Dockerfile: the final stage runs a command (it has no shell): "+in.args)
		}
	}
	if m := numericUser.FindStringSubmatch(user); m == nil || m[1] == "0" {
		problems = append(problems, "Dockerfile: the final stage's USER "+quote(user)+" is not a numeric non-root uid")
	}
	for _, c := range commands {
		if !copied[path.Clean(c)] {
			problems = append(problems, "Dockerfile: the manifests run "+c+", which the final stage does not contain")
		}
	}
	return problems
}

func quote(s string) string { return `"` + s + `"` }

// CheckDockerignore reports the files among needed (slash-separated, relative to the
// build context) that the .dockerignore text excludes. Patterns follow Docker's rules:
// path.Match on the cleaned path or one of its parent directories, later patterns win,
// "!" re-includes; "**" is not supported and reported.
func CheckDockerignore(text string, needed []string) []string {
	var problems []string
	type pattern struct {
		glob   string
		negate bool
	}
	var pats []pattern
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := pattern{}
		if strings.HasPrefix(line, "!") {
			p.negate, line = true, line[1:]
		}
		if strings.Contains(line, "**") {
			problems = append(problems, ".dockerignore: pattern "+line+" uses **, which this check does not support")
			continue
		}
		p.glob = path.Clean(strings.TrimPrefix(line, "/"))
		pats = append(pats, p)
	}
	for _, f := range needed {
		excluded := false
		for _, p := range pats {
			for dir := f; dir != "." && dir != "/"; dir = path.Dir(dir) {
				if ok, _ := path.Match(p.glob, dir); ok {
					excluded = !p.negate
					break
				}
			}
		}
		if excluded {
			problems = append(problems, ".dockerignore excludes "+f+", which the build needs")
		}
	}
	return problems
}
