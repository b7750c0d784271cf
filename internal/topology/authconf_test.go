package topology

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// authPrincipals are auth.conf's users: replica-0 .. replica-7 (four to start with, the
// rest for deploy/README.md's changes), the gateway, the administrator and the NATS-API
// users.
var authPrincipals = []string{"replica-0", "replica-1", "replica-2", "replica-3", "replica-4", "replica-5", "replica-6", "replica-7",
	"gateway", "admin", ClientUser, MonitorUser}

// loadAuthConf parses deploy/k8s/nats/auth.conf, included from a nats.conf as the
// deployment does, with nats-server's own parser.
func loadAuthConf(t *testing.T) (*server.Options, error) {
	t.Helper()
	src, err := AuthConfPath()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("auth.conf: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("port: 4222\ninclude ./auth.conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return server.ProcessConfigFile(conf)
}

func TestAuthConfParses(t *testing.T) {
	for _, id := range authPrincipals {
		t.Setenv(PasswordEnv(id), "pw-"+id)
	}
	opts, err := loadAuthConf(t)
	if err != nil {
		t.Fatalf("nats-server rejects auth.conf: %v", err)
	}
	if len(opts.Users) != len(authPrincipals) {
		t.Fatalf("%d users, want %d", len(opts.Users), len(authPrincipals))
	}
	for _, u := range opts.Users {
		if !slices.Contains(authPrincipals, u.Username) {
			t.Errorf("unexpected user %q", u.Username)
			continue
		}
		if u.Password != "pw-"+u.Username {
			t.Errorf("%s: password %q does not come from $%s", u.Username, u.Password, PasswordEnv(u.Username))
		}
		p := u.Permissions
		if p == nil || p.Publish == nil || p.Subscribe == nil || len(p.Publish.Deny) > 0 || len(p.Subscribe.Deny) > 0 {
			t.Errorf("%s: permissions %+v", u.Username, p)
			continue
		}
		// The NATS-API users ask (the gateway, or the services framework) and read their
		// inbox; they publish nothing of the protocol.
		wantPub, wantSub, wantResponses := []string{"pbft.pbft.api"}, []string{"_INBOX.>"}, false
		switch u.Username {
		case ClientUser:
		case MonitorUser:
			wantPub = []string{"$SRV.>", "pbft.pbft.replica.*.status"}
		default:
			// Every protocol publish permission names the user's own id as the sender (the
			// last token; a trace subject's fourth): it can speak only for itself.
			for _, subj := range p.Publish.Allow {
				own := strings.HasSuffix(subj, "."+u.Username) || subj == "pbft.pbft.trace."+u.Username+".events"
				if !own || !strings.HasPrefix(subj, "pbft.pbft.") {
					t.Errorf("%s may publish %q", u.Username, subj)
				}
			}
			// Both answer the services framework's requests (allow_responses): the
			// gateway the client protocol on pbft.pbft.api, a replica its status.
			wantResponses = true
			switch u.Username {
			case "admin":
				// The administrator (replica reconfigure) is a client that serves nothing.
				wantPub = []string{"pbft.pbft.request.admin", "pbft.pbft.to.*.*.admin"}
				wantSub = []string{"pbft.pbft.to.admin.*.*"}
				wantResponses = false
			case "gateway":
				wantPub = []string{"pbft.pbft.request.gateway", "pbft.pbft.requests.gateway", "pbft.pbft.to.*.*.gateway"}
				wantSub = []string{"pbft.pbft.to.gateway.*.*", "pbft.pbft.trace.*.events", "$SRV.>", "pbft.pbft.api"}
			default:
				wantPub = []string{"pbft.pbft.*." + u.Username, "pbft.pbft.to.*.*." + u.Username, "pbft.pbft.trace." + u.Username + ".events"}
				wantSub = []string{"pbft.pbft.*.*", "pbft.pbft.to." + u.Username + ".*.*", "$SRV.>", "pbft.pbft.replica." + u.Username + ".status"}
			}
		}
		if !slices.Equal(p.Publish.Allow, wantPub) || !slices.Equal(p.Subscribe.Allow, wantSub) {
			t.Errorf("%s: publish %q subscribe %q, want %q %q", u.Username, p.Publish.Allow, p.Subscribe.Allow, wantPub, wantSub)
		}
		// allow_responses: one answer to the reply subject of each request received.
		if got := p.Response != nil && p.Response.MaxMsgs == 1; got != wantResponses {
			t.Errorf("%s: allow_responses %+v, want %v", u.Username, p.Response, wantResponses)
		}
	}
}

// A password variable missing from the environment stops nats-server at start.
func TestAuthConfNeedsPasswords(t *testing.T) {
	for _, id := range authPrincipals {
		t.Setenv(PasswordEnv(id), "pw")
	}
	os.Unsetenv(PasswordEnv("replica-2")) // t.Setenv restores it
	if _, err := loadAuthConf(t); err == nil || !strings.Contains(err.Error(), "REPLICA_2_PASSWORD") {
		t.Fatalf("auth.conf without $REPLICA_2_PASSWORD: %v", err)
	}
}

func TestPasswordEnv(t *testing.T) {
	for id, want := range map[string]string{"replica-0": "REPLICA_0_PASSWORD", "gateway": "GATEWAY_PASSWORD"} {
		if got := PasswordEnv(id); got != want {
			t.Errorf("PasswordEnv(%q) = %q, want %q", id, got, want)
		}
	}
}

// The replica users of auth.conf, by ordinal: the four a deployment starts with and the
// four deploy/README.md's changes add (the pool a campaign's joiners take ids from).
func TestAuthReplicaIDs(t *testing.T) {
	ids, err := AuthReplicaIDs()
	if err != nil {
		t.Fatal(err)
	}
	if want := authPrincipals[:8]; !slices.Equal(ids, want) {
		t.Fatalf("AuthReplicaIDs() = %q, want %q", ids, want)
	}
	for id, want := range map[string]bool{"replica-0": true, "replica-12": true, "replica-": false, "replica-01": false,
		"replica--1": false, "replica-x": false, "gateway": false, "n1": false} {
		if _, ok := replicaOrdinal(id); ok != want {
			t.Errorf("replicaOrdinal(%q) ok = %v, want %v", id, ok, want)
		}
	}
}

// With Auth a replica added later needs a user of auth.conf (Start gave every user a
// password); without Auth any id will do.
func TestAddReplicaNeedsAnAuthUser(t *testing.T) {
	top := &Topology{o: Options{Auth: true}, passwords: map[string]string{"replica-4": "pw"}}
	if err := top.authUserOf("replica-4"); err != nil {
		t.Errorf("replica-4, a user of auth.conf: %v", err)
	}
	if err := top.authUserOf("replica-8"); err == nil || !strings.Contains(err.Error(), `no NATS user "replica-8"`) {
		t.Errorf("replica-8, no user of auth.conf: %v", err)
	}
	top.o.Auth = false
	if err := top.authUserOf("n5"); err != nil {
		t.Errorf("without Auth: %v", err)
	}
}
