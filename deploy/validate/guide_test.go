package validate

import (
	"os"
	"strings"
	"testing"
)

// The deploy guide and the README's Kubernetes section create the namespace and pass
// it to every kubectl command, as the overlay example names it.
func TestGuides(t *testing.T) {
	for _, name := range []string{"../README.md", "../../README.md"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range CheckGuide(name, string(b)) {
			t.Error(p)
		}
	}
}

// TestGuideChecksBite breaks the deploy guide one way at a time.
func TestGuideChecksBite(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	guide := string(b)
	for _, tc := range []struct{ name, old, new, want string }{
		{"Secret in the default namespace", "kubectl -n pbft create secret generic pbft-keys", "kubectl create secret generic pbft-keys", "passes no -n"},
		{"apply into another namespace", "kubectl -n pbft apply -k deploy/k8s", "kubectl -n other apply -k deploy/k8s", "uses namespace other, but the guide created pbft"},
		{"namespace never created", "kubectl create namespace pbft\n", "\n", "before a kubectl create namespace"},
		{"overlay in another namespace", "namespace: pbft\n", "namespace: prod\n", "an overlay sets namespace prod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(guide, tc.old) {
				t.Fatalf("deploy/README.md does not contain %q: the breakage would not apply", tc.old)
			}
			problems := CheckGuide("deploy/README.md", strings.Replace(guide, tc.old, tc.new, 1))
			for _, p := range problems {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Errorf("breakage not reported: want %q, got %q", tc.want, problems)
		})
	}
}
