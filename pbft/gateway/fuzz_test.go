package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// orderedValue decodes one JSON value keeping the order of object keys, into the types
// jsonl.Append writes, so that a reply can be re-encoded and compared byte for byte.
func orderedValue(d *json.Decoder) (any, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '{':
			obj := jsonl.Object{}
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				v, err := orderedValue(d)
				if err != nil {
					return nil, err
				}
				obj = append(obj, jsonl.Field{Key: k.(string), Value: v})
			}
			_, err := d.Token()
			return obj, err
		case '[':
			arr := []any{}
			for d.More() {
				v, err := orderedValue(d)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			_, err := d.Token()
			return arr, err
		}
		return nil, fmt.Errorf("unexpected %v", tok)
	case json.Number:
		if n, err := strconv.ParseInt(string(tok), 10, 64); err == nil {
			return n, nil
		}
		if n, err := strconv.ParseUint(string(tok), 10, 64); err == nil {
			return n, nil
		}
		return nil, fmt.Errorf("a reply holds the non-integer number %s", tok)
	}
	return tok, nil // string, bool, nil
}

func parseReply(line []byte) (jsonl.Object, error) {
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	v, err := orderedValue(d)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the reply object")
	}
	obj, ok := v.(jsonl.Object)
	if !ok {
		return nil, errors.New("the reply is not an object")
	}
	return obj, nil
}

func keys(o jsonl.Object) []string {
	var out []string
	for _, f := range o {
		out = append(out, f.Key)
	}
	return out
}

func get(o jsonl.Object, k string) any {
	for _, f := range o {
		if f.Key == k {
			return f.Value
		}
	}
	return nil
}

// replyFields are the body fields of each reply, between in_reply_to and msg_id, in order
// (docs/protocol.md).
var replyFields = map[string][]string{
	"init_ok":             nil,
	"pbft_request_ok":     {"sequence_number", "view", "phase"},
	"pbft_status_ok":      {"phase", "prepares_received", "commits_received", "executed"},
	"pbft_execute_ok":     {"sequence_number", "view", "result", "replies"},
	"pbft_read_ok":        {"result", "replies", "ordered"},
	"pbft_fault_ok":       nil,
	"pbft_cluster_ok":     {"view", "primary", "replicas"},
	"pbft_reconfigure_ok": {"sequence_number", "configuration", "primary"},
	"error":               {"code", "text"},
}

func nonNegInt(v any) bool {
	switch v := v.(type) {
	case int64:
		return v >= 0
	case uint64:
		return true
	}
	return false
}

func isInt(v any, lo, hi int64) bool {
	n, ok := v.(int64)
	return ok && n >= lo && n <= hi
}

// checkReply checks that out is exactly one reply line to in, as docs/protocol.md words it:
// json.dumps formatting, key order, src/dest swapped, in_reply_to, msg_id 0 (the first
// line this Stdio writes), and the fields and value types of the reply type, which must
// be the answer to the line's type or an error. initialised tells whether the service had
// a cluster. It returns the reply body.
func checkReply(t *testing.T, in *jsonl.Line, out []byte, initialised bool) jsonl.Object {
	t.Helper()
	line, rest, ok := bytes.Cut(out, []byte("\n"))
	if !ok || len(rest) != 0 {
		t.Fatalf("want exactly one newline-terminated reply line, got %q", out)
	}
	top, err := parseReply(line)
	if err != nil {
		t.Fatalf("reply %q: %v", line, err)
	}
	if again := jsonl.Append(nil, top); !bytes.Equal(again, line) {
		t.Fatalf("reply is not written as json.dumps writes it:\n got %s\nwant %s", line, again)
	}
	if !slices.Equal(keys(top), []string{"src", "dest", "body"}) {
		t.Fatalf("reply keys %v, want src, dest, body: %s", keys(top), line)
	}
	if get(top, "src") != in.Dest || get(top, "dest") != in.Src {
		t.Fatalf("reply src/dest %v/%v, want %q/%q", get(top, "src"), get(top, "dest"), in.Dest, in.Src)
	}
	body, ok := get(top, "body").(jsonl.Object)
	if !ok {
		t.Fatalf("reply body is not an object: %s", line)
	}
	typ, _ := get(body, "type").(string)
	want, known := replyFields[typ]
	if !known {
		t.Fatalf("unknown reply type %q: %s", typ, line)
	}
	wantKeys := append(append([]string{"type", "in_reply_to"}, want...), "msg_id")
	if !slices.Equal(keys(body), wantKeys) {
		t.Fatalf("reply body keys %v, want %v: %s", keys(body), wantKeys, line)
	}
	if n, ok := in.MsgIDInt(); ok && get(body, "in_reply_to") != n || !ok && get(body, "in_reply_to") != nil {
		t.Fatalf("in_reply_to %v for msg_id %s", get(body, "in_reply_to"), in.MsgID)
	}
	if get(body, "msg_id") != int64(0) {
		t.Fatalf("msg_id %v, want 0 (the first line written)", get(body, "msg_id"))
	}
	inType := map[string]string{"init": "init_ok", "pbft_request": "pbft_request_ok", "pbft_status": "pbft_status_ok",
		"pbft_execute": "pbft_execute_ok", "pbft_fault": "pbft_fault_ok", "pbft_cluster": "pbft_cluster_ok",
		"pbft_read": "pbft_read_ok", "pbft_reconfigure": "pbft_reconfigure_ok"}
	_, msgIDOK := in.MsgIDInt()
	switch {
	case typ == "error":
		code := get(body, "code")
		if !slices.Contains([]any{int64(0), int64(10), int64(11), int64(12), int64(22)}, code) {
			t.Fatalf("error code %v is not one of docs/protocol.md's: %s", code, line)
		}
		if text, ok := get(body, "text").(string); !ok || text == "" {
			t.Fatalf("error without text: %s", line)
		}
		wantCode := int64(-1)
		switch {
		case inType[in.Type] == "":
			wantCode = 10
		case !msgIDOK:
			wantCode = 12
		case !initialised && in.Type != "init":
			wantCode = 11
		}
		if wantCode >= 0 && code != wantCode {
			t.Fatalf("error code %v, want %d: %s", code, wantCode, line)
		}
	case typ != inType[in.Type]:
		t.Fatalf("reply %s to a %q line", typ, in.Type)
	case !msgIDOK || !initialised && in.Type != "init":
		t.Fatalf("%s without a valid msg_id or a cluster: %s", typ, line)
	}
	switch typ {
	case "pbft_request_ok", "pbft_execute_ok":
		if !nonNegInt(get(body, "sequence_number")) || get(body, "sequence_number") == int64(0) || !nonNegInt(get(body, "view")) {
			t.Fatalf("bad sequence_number or view: %s", line)
		}
	}
	switch typ {
	case "pbft_request_ok":
		if get(body, "phase") != "pre-prepare" {
			t.Fatalf("phase %v: %s", get(body, "phase"), line)
		}
	case "pbft_execute_ok":
		if _, ok := get(body, "result").(string); !ok || !isInt(get(body, "replies"), 3, 4) {
			t.Fatalf("bad result or replies (q = 3 to n = 4): %s", line)
		}
	case "pbft_read_ok":
		_, isStr := get(body, "result").(string)
		_, isBool := get(body, "ordered").(bool)
		if !isStr || !isBool || !isInt(get(body, "replies"), 3, 4) {
			t.Fatalf("bad result, ordered or replies (q = 3 to n = 4): %s", line)
		}
	case "pbft_status_ok":
		if !slices.Contains([]any{"none", "pre-prepare", "prepared", "committed"}, get(body, "phase")) ||
			!isInt(get(body, "prepares_received"), 0, 4) || !isInt(get(body, "commits_received"), 0, 4) {
			t.Fatalf("bad status fields: %s", line)
		}
		if _, ok := get(body, "executed").(bool); !ok {
			t.Fatalf("executed is not a boolean: %s", line)
		}
	case "pbft_cluster_ok":
		reps, ok := get(body, "replicas").([]any)
		if !ok || len(reps) != 4 || !nonNegInt(get(body, "view")) {
			t.Fatalf("bad cluster fields: %s", line)
		}
		if p, _ := get(body, "primary").(string); !slices.Contains(fuzzIDs, p) {
			t.Fatalf("primary %v is not a replica: %s", get(body, "primary"), line)
		}
		for i, r := range reps {
			o, ok := r.(jsonl.Object)
			if !ok || !slices.Equal(keys(o), []string{"node", "view", "last_executed", "stable_checkpoint", "fault"}) ||
				get(o, "node") != fuzzIDs[i] || !nonNegInt(get(o, "view")) || !nonNegInt(get(o, "last_executed")) ||
				!nonNegInt(get(o, "stable_checkpoint")) {
				t.Fatalf("bad replica %d: %s", i, line)
			}
			if _, ok := get(o, "fault").(string); !ok {
				t.Fatalf("bad replica %d fault: %s", i, line)
			}
		}
	}
	return body
}

var fuzzIDs = []string{"n1", "n2", "n3", "n4"}

// wellFormedReconfigure reports a pbft_reconfigure the gateway would act on.
func wellFormedReconfigure(l *jsonl.Line) bool {
	ids, ok, err := l.Strings("replicas")
	_, idOK := l.MsgIDInt()
	return err == nil && ok && idOK && pbft.ValidateMembers(ids) == nil
}

// fuzzLines seeds f with the lines of every golden input and a few odd ones.
func fuzzLines(f *testing.F) {
	for _, dir := range []string{"../../testdata/cases", "testdata/cases"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.in"))
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				f.Add(slices.Clone(sc.Bytes()))
			}
		}
	}
	for _, s := range []string{
		`{"src":"c1","dest":"n2","body":{"type":"pbft_execute","msg_id":-3,"operation":"get x","client":"c1"}}`,
		`{"src":"c1","dest":"n9","body":{"type":"pbft_status","msg_id":9223372036854775807,"sequence_number":18446744073709551616}}`,
		`{"src":"c\u00e9\ud83d\ude00","dest":"n3","body":{"type":"pbft_cluster","msg_id":0}}`,
		`{"src":"c1","dest":"n1","body":{"type":"pbft_fault","msg_id":4,"node":"n2","fault":"equivocate"}}`,
		`{"src":"c1","dest":"n1","body":{"type":"pbft_fault","msg_id":4,"node":"n5","fault":"crash"}}`,
		`{"src":"c1","dest":"n1","body":{"type":"pbft_request","msg_id":1.0,"operation":"set x=1"}}`,
		`{"body":{"type":"pbft_request","msg_id":7,"operation":"set x=1"}}`,
		`{"src":"c1","body":{"type":"pbft_execute","msg_id":7,"operation":"del x","client":null}}`,
		`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3"]}}`,
		`{"src":"c1","dest":"n1","body":{"type":"pbft_status","msg_id":"4","sequence_number":1}}`,
		`{"src":"c1","dest":"n1","body":{}}`,
		`{"src":"c1","dest":"n1","body":[]}`,
		"{\"src\":\"c1\xff\",\"dest\":\"n1\",\"body\":{\"type\":\"pbft_execute\",\"msg_id\":8,\"operation\":\"set \xfe=\\u2028\"}}",
	} {
		f.Add([]byte(s))
	}
}

// fuzzTimeout bounds every wait, so that a degraded cluster costs seconds, not minutes.
const fuzzTimeout = 2 * time.Second

// fuzzGateway is a Service over an embedded 4-replica cluster, and one that was never
// initialised (its cluster cannot start), that fuzz inputs are run through.
type fuzzGateway struct {
	once       sync.Once
	svc, empty *Service
}

func newFuzzGateway(f *testing.F) *fuzzGateway {
	g := &fuzzGateway{}
	f.Cleanup(func() {
		if g.svc != nil {
			g.svc.Close()
		}
	})
	return g
}

func (g *fuzzGateway) setup(t *testing.T) {
	g.once.Do(func() {
		s := testSettings().ForStdio()
		s.RequestTimeout = fuzzTimeout
		logger := slog.New(slog.DiscardHandler)
		svc := NewService(s, logger, func(ids []string) (Backend, error) { return embedded.Start(ids, s, logger) })
		init, err := jsonl.Parse([]byte(`{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3","n4"]}}`))
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Init(init); err != nil {
			t.Fatal(err)
		}
		g.svc = svc
		g.empty = NewService(s, logger, func([]string) (Backend, error) { return nil, errors.New("no cluster in this test") })
	})
	if g.svc == nil {
		t.Fatal("the cluster did not start")
	}
}

func runLine(t *testing.T, s *Service, input []byte) []byte {
	var out bytes.Buffer
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- NewStdio(s, slog.New(slog.DiscardHandler)).Run(ctx, bytes.NewReader(input), &out) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * fuzzTimeout):
		t.Fatalf("no answer to %q within %v", input, 5*fuzzTimeout)
	}
	return out.Bytes()
}

// line runs one line through both services and checks the outcome; afterwards the
// cluster is honest again (faults the line injected are cleared).
func (g *fuzzGateway) line(t *testing.T, line []byte) {
	g.setup(t)
	line = bytes.ReplaceAll(line, []byte("\n"), []byte(" ")) // one line
	in, perr := jsonl.Parse(line)
	input := append(slices.Clone(line), '\n')
	for _, s := range []*Service{g.empty, g.svc} {
		if s == g.svc && perr == nil && in.Type == "pbft_reconfigure" && wellFormedReconfigure(in) {
			// It would change the shared cluster's membership under the checks of the
			// lines after it: the golden cases run reconfigurations end to end.
			continue
		}
		out := runLine(t, s, input)
		if perr != nil {
			if len(out) != 0 {
				t.Fatalf("a line that cannot be answered (%v) got %q", perr, out)
			}
			continue
		}
		checkReply(t, in, out, s == g.svc)
	}
	for _, id := range fuzzIDs {
		if b := g.svc.Backend(); b.Plan().Faults[id] != string(pbft.FaultNone) {
			if err := b.SetFault(id, pbft.FaultNone); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzLine: one arbitrary input line, run end to end through the stdio engine of a
// Service over an embedded 4-replica cluster (and of one that was never initialised),
// produces exactly one well-formed reply line as docs/protocol.md specifies — the reply to
// the line's type or an error with the right code — or, if the line is not a JSON object
// with an object body, nothing at all. Never a panic, never a hang. The cluster is shared
// by all inputs of a run; faults a line injects are cleared after it.
func FuzzLine(f *testing.F) {
	fuzzLines(f)
	g := newFuzzGateway(f)
	f.Fuzz(func(t *testing.T, line []byte) { g.line(t, line) })
}

// FuzzLineFields is FuzzLine with the line assembled from fuzzed fields, so that most
// inputs are well-formed messages that reach the cluster: every message type, with
// fields present, absent, null or of the wrong type, odd msg_ids, clients, operations,
// sequence numbers, replicas and faults.
func FuzzLineFields(f *testing.F) {
	f.Add("c1", "n1", uint8(1), int64(2), uint8(0), "set x=1", "c1", uint64(1), "n2", uint16(0))
	f.Add("c1", "n2", uint8(2), int64(3), uint8(0), "get x", "", uint64(1), "n3", uint16(0x0100))
	f.Add("c1", "n3", uint8(3), int64(4), uint8(0), "", "", uint64(1), "n1", uint16(0))
	f.Add("c0", "n1", uint8(4), int64(5), uint8(0), "", "", uint64(0), "n1", uint16(0x0003))
	f.Add("c0", "n4", uint8(5), int64(6), uint8(0), "", "", uint64(0), "n2", uint16(0))
	f.Add("c0", "n1", uint8(0), int64(1), uint8(0), "", "", uint64(0), "n1", uint16(0))
	f.Add("", "", uint8(2), int64(-1), uint8(3), "del x", "\u00e9", uint64(1<<63), "n9", uint16(0xffff))
	g := newFuzzGateway(f)
	types := []string{"init", "pbft_request", "pbft_execute", "pbft_status", "pbft_fault", "pbft_cluster", "pbft_read"}
	faults := []string{"crash", "recover", "silent", "equivocate", "none", "", "CRASH"}
	f.Fuzz(func(t *testing.T, src, dest string, typ uint8, msgID int64, msgIDForm uint8,
		op, client string, seq uint64, nodeID string, mask uint16) {
		body := jsonl.Object{{Key: "type", Value: types[int(typ)%len(types)]}}
		if typ >= 128 {
			body[0].Value = op // an arbitrary type
		}
		switch msgIDForm % 6 {
		case 0:
			body = append(body, jsonl.Field{Key: "msg_id", Value: msgID})
		case 1:
			body = append(body, jsonl.Field{Key: "msg_id", Value: strconv.FormatInt(msgID, 10)})
		case 2:
			body = append(body, jsonl.Field{Key: "msg_id", Value: nil})
		case 3:
			body = append(body, jsonl.Field{Key: "msg_id", Value: uint64(msgID)})
		case 4: // absent
		case 5:
			body = append(body, jsonl.Field{Key: "msg_id", Value: []any{msgID}})
		}
		// Each field is present unless its bit in mask is set; the bit 8 places up gives
		// it the wrong type instead.
		field := func(bit uint, key string, v any) {
			switch {
			case mask&(1<<(bit+8)) != 0:
				body = append(body, jsonl.Field{Key: key, Value: []any{v}})
			case mask&(1<<bit) == 0:
				body = append(body, jsonl.Field{Key: key, Value: v})
			}
		}
		field(0, "operation", op)
		field(1, "client", client)
		field(2, "sequence_number", seq)
		field(3, "node", nodeID)
		field(4, "fault", faults[int(msgIDForm/8)%len(faults)])
		field(5, "node_id", nodeID)
		ids := []string{"n1", "n2", "n3", "n4"}
		if msgIDForm&0x80 != 0 {
			ids = []string{nodeID, "n2", "n3", "n4"}
		}
		field(6, "node_ids", ids)
		line := jsonl.Append(nil, jsonl.Object{{Key: "src", Value: src}, {Key: "dest", Value: dest}, {Key: "body", Value: body}})
		g.line(t, line)
	})
}
