package bus

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

func TestValidToken(t *testing.T) {
	for _, tc := range []struct {
		tok string
		ok  bool
	}{
		{"n1", true},
		{"gateway", true},
		{"pre-prepare_2", true},
		{"ünïcode", true},
		{"", false},
		{"a.b", false},
		{"*", false},
		{"a*", false},
		{">", false},
		{"a>b", false},
		{"a b", false},
		{"a\tb", false},
		{"a\nb", false},
		{"a\u00a0b", false}, // non-breaking space
		{"a\x00b", false},
		{"a\x7fb", false},
		{"a\xffb", false}, // invalid UTF-8
	} {
		if got := validToken(tc.tok); got != tc.ok {
			t.Errorf("validToken(%q) = %v, want %v", tc.tok, got, tc.ok)
		}
		err := checkToken("id", tc.tok)
		if tc.ok != (err == nil) {
			t.Errorf("checkToken(%q) = %v", tc.tok, err)
		}
		if err != nil && !errors.Is(err, ErrInvalidToken) {
			t.Errorf("checkToken(%q) = %v, not ErrInvalidToken", tc.tok, err)
		}
	}
}

func TestCheckKindReservesTo(t *testing.T) {
	if err := checkKind("to"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("checkKind(to) = %v, want ErrInvalidToken", err)
	}
	if err := checkKind("a.b"); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), `"a.b"`) {
		t.Fatalf("checkKind(a.b) = %v, want ErrInvalidToken naming the value", err)
	}
	if err := checkKind("prepare"); err != nil {
		t.Fatalf("checkKind(prepare) = %v", err)
	}
}

func TestBuildSubjects(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{broadcastSubject("pbft", "prepare", "n1"), "pbft.pbft.prepare.n1"},
		{directSubject("c1", "gateway", "reply", "n3"), "pbft.c1.to.gateway.reply.n3"},
		{broadcastFilter("c1"), "pbft.c1.*.*"},
		{inboxFilter("c1", "n2"), "pbft.c1.to.n2.*.*"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestParseSubject(t *testing.T) {
	for _, tc := range []struct {
		subject    string
		kind, from string
		ok         bool
	}{
		{"pbft.c1.prepare.n1", "prepare", "n1", true},
		{"pbft.c1.to.n2.reply.gateway", "reply", "gateway", true},
		{"pbft.c1.to.n2.to.n1", "", "", false},    // reserved kind
		{"pbft.c1.to.n1", "", "", false},          // broadcast of kind "to"
		{"pbft.c1.to.n3.reply.n1", "", "", false}, // not for us
		{"pbft.c2.prepare.n1", "", "", false},     // other cluster
		{"pbft.c1x.prepare.n1", "", "", false},
		{"nats.c1.prepare.n1", "", "", false},
		{"pbft.c1.prepare", "", "", false},
		{"pbft.c1.prepare.n1.extra", "", "", false},
		{"pbft.c1.to.n2.reply", "", "", false},
		{"pbft.c1.to.n2.reply.n1.extra", "", "", false},
		{"pbft.c1..n1", "", "", false},
		{"pbft.c1.prepare.", "", "", false},
		{"pbft.c1.*.n1", "", "", false},
		{"pbft", "", "", false},
		{"", "", "", false},
	} {
		kind, from, ok := parseSubject("c1", "n2", tc.subject)
		if ok != tc.ok || kind != tc.kind || from != tc.from {
			t.Errorf("parseSubject(%q) = (%q, %q, %v), want (%q, %q, %v)",
				tc.subject, kind, from, ok, tc.kind, tc.from, tc.ok)
		}
	}
}

// Every subject we build must parse back, and the token counts must keep
// broadcasts and point-to-point messages apart.
func TestBuildParseRoundTrip(t *testing.T) {
	for _, kind := range []string{"prepare", "commit", "reply"} {
		for _, sender := range []string{"n1", "gateway", "to"} {
			if k, s, ok := parseSubject("c", "n2", broadcastSubject("c", kind, sender)); !ok || k != kind || s != sender {
				t.Errorf("broadcast %s/%s parsed as (%q, %q, %v)", kind, sender, k, s, ok)
			}
			if k, s, ok := parseSubject("c", "n2", directSubject("c", "n2", kind, sender)); !ok || k != kind || s != sender {
				t.Errorf("direct %s/%s parsed as (%q, %q, %v)", kind, sender, k, s, ok)
			}
		}
	}
}

func TestSubjectCache(t *testing.T) {
	c := newSubjectCache("c1", "n1")
	for _, tc := range []struct{ to, kind, want string }{
		{"", "prepare", "pbft.c1.prepare.n1"},
		{"n2", "prepare", "pbft.c1.to.n2.prepare.n1"},
		{"", "prepare", "pbft.c1.prepare.n1"}, // hit
	} {
		got, err := c.direct(tc.to, tc.kind)
		if tc.to == "" {
			got, err = c.broadcast(tc.kind)
		}
		if err != nil || got != tc.want {
			t.Errorf("subject(%q, %q) = %q, %v; want %q", tc.to, tc.kind, got, err, tc.want)
		}
	}
	for _, bad := range []struct{ to, kind string }{{"", "prepare"}, {"n2", "to"}, {"n 2", "x"}, {"n2", ""}} {
		if _, err := c.direct(bad.to, bad.kind); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("direct(%q, %q) = %v, want ErrInvalidToken", bad.to, bad.kind, err)
		}
	}
	for _, bad := range []string{"to", "", "a.b"} {
		if _, err := c.broadcast(bad); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("broadcast(%q) = %v, want ErrInvalidToken", bad, err)
		}
	}
	if n := len(*c.m.Load()); n != 2 {
		t.Errorf("cache holds %d entries, want 2 (errors are not cached)", n)
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = c.direct("n2", "prepare") }); a != 0 {
		t.Errorf("cache hit allocates %v times", a)
	}
	if a := testing.AllocsPerRun(100, func() { parseSubject("c1", "n1", "pbft.c1.to.n1.prepare.n2") }); a != 0 {
		t.Errorf("parseSubject allocates %v times", a)
	}
}

func TestSubjectCacheConcurrentAndBounded(t *testing.T) {
	c := newSubjectCache("c", "n1")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range maxCachedSubjects {
				to := "p" + string(rune('a'+g)) + strings.Repeat("x", i%7)
				want := directSubject("c", to, "k", "n1")
				if got, err := c.direct(to, "k"); err != nil || got != want {
					t.Errorf("subject(%q) = %q, %v", to, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := len(*c.m.Load()); n != 8*7 {
		t.Errorf("cache holds %d entries, want %d", n, 8*7)
	}
	for i := range maxCachedSubjects + 10 {
		to := "q" + strings.Repeat("y", i%50) + string(rune('A'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
		if _, err := c.direct(to, "k"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(*c.m.Load()); n > maxCachedSubjects {
		t.Errorf("cache grew to %d entries, bound is %d", n, maxCachedSubjects)
	}
}

// The API subjects are matched by no subscription of the protocol, so a replica never
// takes an API request for a protocol message, nor the other way round.
func TestAPISubjectsCollideWithNoProtocolSubscription(t *testing.T) {
	api, err := APISubject("c")
	if err != nil || api != "pbft.c.api" {
		t.Fatalf("APISubject = %q, %v", api, err)
	}
	status, err := ReplicaStatusSubject("c", "n1")
	if err != nil || status != "pbft.c.replica.n1.status" {
		t.Fatalf("ReplicaStatusSubject = %q, %v", status, err)
	}
	filters := []string{broadcastFilter("c"), inboxFilter("c", "n1"), inboxFilter("c", "replica"), TraceFilter("c")}
	for _, subj := range []string{api, status} {
		for _, f := range filters {
			if server.SubjectsCollide(subj, f) {
				t.Errorf("%s is matched by the protocol subscription %s", subj, f)
			}
		}
		if kind, sender, ok := parseSubject("c", "n1", subj); ok {
			t.Errorf("parseSubject(%s) = %q %q, true", subj, kind, sender)
		}
	}
	for _, bad := range [][2]string{{"", "n1"}, {"a.b", "n1"}, {"c", ""}, {"c", "n*"}, {"c", "a.b"}} {
		if s, err := ReplicaStatusSubject(bad[0], bad[1]); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("ReplicaStatusSubject(%q, %q) = %q, %v", bad[0], bad[1], s, err)
		}
	}
	if s, err := APISubject("x>"); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("APISubject(x>) = %q, %v", s, err)
	}
}
