package validate

import (
	"fmt"
	"slices"
	"strings"
)

// CheckGuide checks the kubectl commands in the sh code blocks of a Markdown guide:
// the namespace is created before anything is put into it, and every command that acts
// on namespaced objects (Secrets, apply, port-forward, ...) passes the same -n, so the
// Secrets land where the pods look for them; a YAML block's "namespace:" (an overlay)
// must be that namespace too.
func CheckGuide(name, markdown string) []string {
	var problems []string
	ns := ""
	var overlayNS []string
	for _, b := range codeBlocks(markdown) {
		if b.lang == "yaml" {
			for _, l := range strings.Split(b.text, "\n") {
				if v, ok := strings.CutPrefix(l, "namespace:"); ok {
					overlayNS = append(overlayNS, strings.TrimSpace(v))
				}
			}
			continue
		}
		if b.lang != "sh" {
			continue
		}
		for _, cmd := range kubectlCommands(b.text) {
			f := strings.Fields(cmd)
			if f[1] == "kustomize" {
				continue // renders locally
			}
			if len(f) >= 4 && f[1] == "create" && (f[2] == "namespace" || f[2] == "ns") {
				ns = f[3]
				continue
			}
			got, ok := namespaceFlag(f)
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("%s: %q passes no -n: it acts on the default namespace", name, cmd))
			case ns == "":
				problems = append(problems, fmt.Sprintf("%s: %q uses namespace %s before a kubectl create namespace", name, cmd, got))
			case got != ns:
				problems = append(problems, fmt.Sprintf("%s: %q uses namespace %s, but the guide created %s", name, cmd, got, ns))
			}
		}
	}
	for _, o := range overlayNS {
		if ns != "" && o != ns {
			problems = append(problems, fmt.Sprintf("%s: an overlay sets namespace %s, but the commands use %s", name, o, ns))
		}
	}
	return problems
}

type codeBlock struct{ lang, text string }

// codeBlocks returns the fenced code blocks of a Markdown text.
func codeBlocks(md string) []codeBlock {
	var out []codeBlock
	var cur *codeBlock
	for _, l := range strings.Split(md, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case cur == nil && strings.HasPrefix(t, "```"):
			cur = &codeBlock{lang: strings.TrimPrefix(t, "```")}
		case cur != nil && t == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
		}
	}
	return out
}

// kubectlCommands returns the kubectl commands of a shell block: each line's, each
// part's of a pipeline, and those run by a loop (until kubectl ...; do).
func kubectlCommands(text string) []string {
	var out []string
	for _, line := range shellLines(text) {
		for _, part := range strings.Split(line, " | ") {
			f := strings.Fields(part)
			i := slices.Index(f, "kubectl")
			if i < 0 || i+1 >= len(f) {
				continue
			}
			cmd := strings.Join(f[i:], " ")
			if j := strings.Index(cmd, ";"); j >= 0 {
				cmd = cmd[:j]
			}
			out = append(out, cmd)
		}
	}
	return out
}

// shellLines joins continuation lines and drops comments (a # after a blank) and
// empty lines.
func shellLines(text string) []string {
	var out []string
	cur := ""
	for _, l := range strings.Split(text, "\n") {
		if i := strings.Index(l, " #"); i >= 0 {
			l = l[:i]
		}
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if s, ok := strings.CutSuffix(strings.TrimRight(l, " "), `\`); ok {
			cur += s + " "
			continue
		}
		cur += l
		if t := strings.TrimSpace(cur); t != "" {
			out = append(out, t)
		}
		cur = ""
	}
	return out
}

// namespaceFlag returns the value of -n, --namespace or --namespace= in a command.
func namespaceFlag(f []string) (string, bool) {
	for i, a := range f {
		if v, ok := strings.CutPrefix(a, "--namespace="); ok {
			return v, true
		}
		if (a == "-n" || a == "--namespace") && i+1 < len(f) {
			return f[i+1], true
		}
	}
	return "", false
}
