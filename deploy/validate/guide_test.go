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

// TestGuideSteps follows the deploy guide's commands against the manifests (the base
// and deploy/k8s/admin): installing, replacing a key, growing to seven and back; and the
// repository README's install commands.
func TestGuideSteps(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	objs, problems := Load(render(t, tree(t)))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	for _, p := range CheckGuideSteps("deploy/README.md", string(b), objs) {
		t.Error(p)
	}
	// The repository README's short version installs the same way.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range CheckGuideSteps("README.md", string(readme), objs) {
		t.Error(p)
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
		{"piped apply in the default namespace", "-o yaml | kubectl -n pbft apply -f -", "-o yaml | kubectl apply -f -", `"kubectl apply -f -" passes no -n`},
		{"a loop's kubectl in another namespace", "until kubectl -n pbft exec", "until kubectl -n other exec", "uses namespace other, but the guide created pbft"},
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

// TestGuideStepsBite breaks the deploy guide's steps, or the manifests they run against,
// one way at a time.
func TestGuideStepsBite(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	guide := string(b)
	const growNext = `kubectl -n pbft patch configmap replica-membership --type merge -p '{"data":{"next":"replica-1,replica-2,replica-3,replica-4,replica-5,replica-6,replica-7"}}'` + "\n"
	const growScale = "kubectl -n pbft scale statefulset/replica --replicas=7\n"
	const shrink = "# And back to four: reconfigure first, while the three still run, then scale down.\n"
	for _, tc := range []struct {
		name, old, new   string
		file, fold, fnew string // a breakage of the manifests instead
		want             string
	}{
		{name: "scale past the NATS users", old: "--replicas=7", new: "--replicas=8", want: `pod replica-8: NATS has no user "replica-8"`},
		{name: "a NATS user the manifests lack", file: authConf, fold: `user: "replica-7"`, fnew: `user: "replica-seven"`, want: `pod replica-7: NATS has no user "replica-7"`},
		{name: "no admin Secret", old: "kubectl -n pbft create secret generic pbft-admin --from-file=admin-keys/admin.key\n", new: "", want: "the administrator: Secret pbft-admin has no admin.key"},
		{name: "admin key pair made among the replicas' keys", old: "keygen -dir admin-keys admin\n", new: "keygen -dir admin-keys admin\ncp admin-keys/admin.key keys/\n", want: "Secret pbft-keys holds admin.key, the administrator's private key, and [Deployment/gateway StatefulSet/replica] mount it: only the Job may"},
		{name: "admin key in the replicas' Secret only", old: "--from-file=admin-keys/admin.key", new: "--from-file=keys/admin.pub", want: "the administrator: Secret pbft-admin has no admin.key"},
		{name: "no key pair for a new replica", old: "keygen -dir keys replica-5 replica-6 replica-7", new: "keygen -dir keys replica-5 replica-6", want: "pod replica-7: Secret pbft-keys has no replica-7.key"},
		{name: "no NATS password for a replica", old: "replica-6 replica-7 gateway admin", new: "replica-6 gateway admin", want: "NATS reads key replica-7 of Secret pbft-nats-auth, which the guide did not create"},
		{name: "the Job applied again without deleting it", old: "kubectl -n pbft delete job reconfigure\n", new: "", want: "still exists from a previous run"},
		{name: "scale down before reconfiguring", old: shrink, new: shrink + "kubectl -n pbft scale statefulset/replica --replicas=4\n", want: "removes replica-7, a member of the configuration in force"},
		{name: "joiners started before next names them", old: growNext + growScale, new: growScale + growNext, want: "pod replica-5 is in neither initial"},
		{name: "the Job before the joiners run", old: growScale, new: "", want: "next names replica-5, which does not run"},
		{name: "a new key for an id that was a member", old: "needed nowhere any more\n", new: "needed nowhere any more\ngo run ./cmd/replica keygen -dir keys replica-0\n", want: "a new key pair for replica-0, which was a member"},
		{name: "members not the membership in force", old: `-p '{"data":{"members":"replica-1,replica-2,replica-3,replica-4"}}'`, new: `-p '{"data":{"members":"replica-0,replica-1,replica-2,replica-3,replica-4"}}'`, want: "is not the membership in force"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, fsys := guide, tree(t)
			if tc.file != "" {
				fsys = mutate(t, tc.file, tc.fold, tc.fnew)
			} else {
				if !strings.Contains(guide, tc.old) {
					t.Fatalf("deploy/README.md does not contain %q: the breakage would not apply", tc.old)
				}
				g = strings.Replace(guide, tc.old, tc.new, 1)
			}
			objs, problems := Load(render(t, fsys))
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			problems = CheckGuideSteps("deploy/README.md", g, objs)
			for _, p := range problems {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Errorf("breakage not reported: want %q, got %q", tc.want, problems)
		})
	}
}
