package bus

import (
	"strings"
	"testing"
)

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222": "nats://127.0.0.1:4222",
		"nats://replica-0:s3cret@a:4222,nats://replica-0:s3cret@b:4222": "nats://replica-0:xxxxx@a:4222,nats://replica-0:xxxxx@b:4222",
		"nats://a:1,nats://u:p@b:2":                                     "nats://a:1,nats://u:xxxxx@b:2",
	} {
		if got := RedactURLs(in); got != want {
			t.Errorf("RedactURLs(%q) = %q, want %q", in, got, want)
		}
	}
	if got := RedactURLs("nats://u:p%zz@host"); strings.Contains(got, "p%zz") {
		t.Errorf("an unparsable URL leaked its password: %q", got)
	}
}
