package gateway

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestReconfigureToAnIDThatIsNotASubjectToken: replica ids travel in NATS subjects, so a
// joiner named "a.b" cannot start; the reconfiguration gets error 12 (it used to get the
// timeout code 0) and changes nothing: the next request is the first of the old membership.
func TestReconfigureToAnIDThatIsNotASubjectToken(t *testing.T) {
	in := `{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}
{"src":"c0","dest":"n1","body":{"type":"pbft_reconfigure","msg_id":2,"replicas":["n1","n2","n3","a.b"]}}
{"src":"c0","dest":"n1","body":{"type":"pbft_reconfigure","msg_id":3,"replicas":["n1","x y","*"]}}
{"src":"c1","dest":"n1","body":{"type":"pbft_execute","msg_id":4,"operation":"set x=1","client":"c1"}}
`
	lines := strings.Split(strings.TrimSpace(runStdio(t, []byte(in))), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 answers, got %d:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	type answer struct {
		Body struct {
			Type    string
			Code    int
			Text    string
			Seq     int `json:"sequence_number"`
			Replies int
		}
	}
	ans := make([]answer, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &ans[i]); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
	}
	for _, i := range []int{1, 2} {
		if b := ans[i].Body; b.Type != "error" || b.Code != CodeMalformed || !strings.Contains(b.Text, "subject token") {
			t.Errorf("answer %d: want error 12 naming the subject token, got %s", i, lines[i])
		}
	}
	if b := ans[3].Body; b.Type != "pbft_execute_ok" || b.Seq != 1 || b.Replies != 4 {
		t.Errorf("the membership changed: want seq 1 with 4 replies, got %s", lines[3])
	}
}

// An init whose node_ids hold an id that is not a subject token is malformed (error 12,
// as for pbft_reconfigure), not a cluster that could not start (11), and starts nothing:
// a correct init afterwards works.
func TestInitWithAnIDThatIsNotASubjectToken(t *testing.T) {
	in := `{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","a.b","n3","n4"]}}
{"src":"c0","dest":"n1","body":{"type":"init","msg_id":2,"node_id":"n1","node_ids":["n1","n2","n3","n\u0001"]}}
{"src":"c0","dest":"n1","body":{"type":"init","msg_id":3,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}
`
	lines := strings.Split(strings.TrimSpace(runStdio(t, []byte(in))), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 answers, got %d:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, l := range lines[:2] {
		var a struct {
			Body struct {
				Type, Text string
				Code       int
			}
		}
		if err := json.Unmarshal([]byte(l), &a); err != nil || a.Body.Type != "error" || a.Body.Code != CodeMalformed ||
			!strings.Contains(a.Body.Text, "subject token") {
			t.Errorf("answer %d: want error 12 naming the subject token, got %s (%v)", i, l, err)
		}
	}
	if !strings.Contains(lines[2], `"init_ok"`) {
		t.Errorf("a correct init after the refused ones: %s", lines[2])
	}
}
