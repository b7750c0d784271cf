package bus

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// Every NATS subject the package uses is built and parsed in this file.
//
//	broadcast:      pbft.<cluster>.<kind>.<sender>
//	point-to-point: pbft.<cluster>.to.<receiver>.<kind>.<sender>
//
// The two shapes have different token counts (4 and 6), so the replica's
// broadcast subscription "pbft.<cluster>.*.*" can never match a
// point-to-point subject, and "to" is reserved as a kind so that a 4-token
// subject is never confused with the start of a 6-token one.
const (
	subjectRoot = "pbft"
	directToken = "to"
)

// validToken reports whether s may be used as one subject token (a cluster
// name, an endpoint id or a kind).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		// '.' separates tokens, '*' and '>' are wildcards; whitespace and
		// control characters break the protocol line. Invalid UTF-8 is
		// refused too so that ids print unambiguously in logs.
		if r == '.' || r == '*' || r == '>' || r == utf8.RuneError ||
			unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// checkToken is validToken with an error wrapping ErrInvalidToken that
// names what the token is for.
func checkToken(what, s string) error {
	if !validToken(s) {
		return fmt.Errorf("%w: %s %q", ErrInvalidToken, what, s)
	}
	return nil
}

// CheckToken is checkToken for the packages that take ids and names from settings and
// arguments (replica, client and administrator ids, the cluster): they travel as subject
// tokens, so a bad one is refused where it enters, with an error wrapping
// ErrInvalidToken that names what it is.
func CheckToken(what, s string) error { return checkToken(what, s) }

// checkKind is checkToken plus the reserved "to".
func checkKind(kind string) error {
	if kind == directToken {
		return fmt.Errorf("%w: kind %q is reserved", ErrInvalidToken, kind)
	}
	return checkToken("kind", kind)
}

// broadcastSubject returns pbft.<cluster>.<kind>.<sender>.
func broadcastSubject(cluster, kind, sender string) string {
	return subjectRoot + "." + cluster + "." + kind + "." + sender
}

// directSubject returns pbft.<cluster>.to.<receiver>.<kind>.<sender>.
func directSubject(cluster, receiver, kind, sender string) string {
	return subjectRoot + "." + cluster + "." + directToken + "." + receiver + "." + kind + "." + sender
}

// broadcastFilter is what replicas subscribe to for broadcasts.
func broadcastFilter(cluster string) string {
	return subjectRoot + "." + cluster + ".*.*"
}

// inboxFilter is what every endpoint subscribes to for its own
// point-to-point messages.
func inboxFilter(cluster, self string) string {
	return subjectRoot + "." + cluster + "." + directToken + "." + self + ".*.*"
}

// Trace events (package pbft/trace) travel on pbft.<cluster>.trace.<sender>.events: five
// tokens, so neither a replica's broadcast subscription nor its inbox matches them.
const (
	traceToken = "trace"
	traceLast  = "events"
)

// traceSubject returns pbft.<cluster>.trace.<sender>.events.
func traceSubject(cluster, sender string) string {
	return subjectRoot + "." + cluster + "." + traceToken + "." + sender + "." + traceLast
}

// TraceFilter is what a trace viewer subscribes to: every endpoint's trace events.
func TraceFilter(cluster string) string {
	return subjectRoot + "." + cluster + "." + traceToken + ".*." + traceLast
}

// TraceSender returns the sender named in a trace subject of cluster.
func TraceSender(cluster, subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, subjectRoot+"."+cluster+"."+traceToken+".")
	if !ok {
		return "", false
	}
	sender, ok := strings.CutSuffix(rest, "."+traceLast)
	if !ok || !validToken(sender) {
		return "", false
	}
	return sender, true
}

// parseSubject splits a received subject into kind and sender. It accepts a
// broadcast of cluster, or a point-to-point message of cluster addressed to
// self; anything else (including a broadcast with the reserved kind "to")
// yields ok == false. The results are substrings of subject: no allocation.
func parseSubject(cluster, self, subject string) (kind, sender string, ok bool) {
	root, rest, _ := strings.Cut(subject, ".")
	c, rest, _ := strings.Cut(rest, ".")
	if root != subjectRoot || c != cluster {
		return "", "", false
	}
	kind, rest, _ = strings.Cut(rest, ".")
	if kind == directToken {
		var receiver string
		receiver, rest, _ = strings.Cut(rest, ".")
		if receiver != self {
			return "", "", false
		}
		kind, rest, _ = strings.Cut(rest, ".")
	}
	// rest is the sender and must be exactly one token.
	if kind == directToken || !validToken(kind) || !validToken(rest) {
		return "", "", false
	}
	return kind, rest, true
}

// subjectKey names one cached subject; to == "" means broadcast, which is
// unambiguous because "" is never a valid endpoint id.
type subjectKey struct{ to, kind string }

// maxCachedSubjects bounds the cache: kinds and peers are few in a PBFT
// cluster, but client ids could in principle be unbounded.
const maxCachedSubjects = 4096

// subjectCache remembers the subjects one sender publishes to, so the hot
// path does not concatenate strings. Reads are lock-free and allocation-free
// (an immutable map behind an atomic pointer); the rare miss copies the map.
type subjectCache struct {
	cluster, self string
	m             atomic.Pointer[map[subjectKey]string]
	mu            sync.Mutex // serialises writers only
}

func newSubjectCache(cluster, self string) *subjectCache {
	c := &subjectCache{cluster: cluster, self: self}
	c.m.Store(&map[subjectKey]string{})
	return c
}

// direct returns the subject for a point-to-point message to to.
func (c *subjectCache) direct(to, kind string) (string, error) {
	if to == "" { // "" is the broadcast key
		return "", checkToken("receiver", to)
	}
	return c.subject(to, kind)
}

// broadcast returns the subject for a broadcast of kind.
func (c *subjectCache) broadcast(kind string) (string, error) { return c.subject("", kind) }

// subject returns the subject for a send to to, or for a broadcast if to is
// "". A hit needs no validation: only validated pairs are cached.
func (c *subjectCache) subject(to, kind string) (string, error) {
	k := subjectKey{to, kind}
	if s, ok := (*c.m.Load())[k]; ok {
		return s, nil
	}
	if err := checkKind(kind); err != nil {
		return "", err
	}
	var s string
	if to == "" {
		s = broadcastSubject(c.cluster, kind, c.self)
	} else {
		if err := checkToken("receiver", to); err != nil {
			return "", err
		}
		s = directSubject(c.cluster, to, kind, c.self)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	if len(old) >= maxCachedSubjects {
		return s, nil
	}
	next := make(map[subjectKey]string, len(old)+1)
	for key, v := range old {
		next[key] = v
	}
	next[k] = s
	c.m.Store(&next)
	return s, nil
}

// The NATS-native API (the services framework, nats.go/micro) has subjects of its own,
// shaped so that no protocol subscription matches them: the gateway's client protocol on
// pbft.<cluster>.api (three tokens) and each replica's status on
// pbft.<cluster>.replica.<id>.status (five tokens, the last not trace's "events").
const (
	apiToken     = "api"
	replicaToken = "replica"
	statusLast   = "status"
)

// APISubject returns pbft.<cluster>.api, where the gateway answers the client protocol.
func APISubject(cluster string) (string, error) {
	if err := checkToken("cluster", cluster); err != nil {
		return "", err
	}
	return subjectRoot + "." + cluster + "." + apiToken, nil
}

// ReplicaStatusSubject returns pbft.<cluster>.replica.<id>.status, where replica id
// answers its status.
func ReplicaStatusSubject(cluster, id string) (string, error) {
	if err := checkToken("cluster", cluster); err != nil {
		return "", err
	}
	if err := checkToken("replica id", id); err != nil {
		return "", err
	}
	return subjectRoot + "." + cluster + "." + replicaToken + "." + id + "." + statusLast, nil
}
