package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
	"github.com/pbft-nats/pbft/pbft/trace"
)

// The live page is served at / with its script, and /v1/trace streams a hello that
// describes the cluster, then the replicas' events of a request executed meanwhile.
func TestTracePageAndStream(t *testing.T) {
	s := testSettings()
	s.Trace = true
	srv := startHTTPWith(t, s)

	resp, body := httpDo(t, "GET", srv.URL+"/", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, `<svg id="diagram"`) || !strings.Contains(body, `src="/ui/trace.js"`) {
		t.Fatalf("GET /: %d %s %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, p := range []string{"/ui/trace.js", "/ui/trace.css"} {
		if resp, body := httpDo(t, "GET", srv.URL+p, ""); resp.StatusCode != 200 || len(body) < 500 {
			t.Fatalf("GET %s: %d, %d bytes", p, resp.StatusCode, len(body))
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/trace", nil)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.StatusCode != 200 || stream.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /v1/trace: %d %s", stream.StatusCode, stream.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(stream.Body)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("stream ended: %v", lines.Err())
		}
		return lines.Text()
	}
	for l := next(); l != "event: hello"; l = next() {
	}
	var hello traceHello
	if err := json.Unmarshal([]byte(strings.TrimPrefix(next(), "data: ")), &hello); err != nil {
		t.Fatal(err)
	}
	if strings.Join(hello.Nodes, ",") != "n1,n2,n3,n4" || hello.F != 1 || hello.Prepare != 2 || hello.Commit != 3 ||
		!hello.Embedded || hello.Trace != "on" || hello.Client != s.ClientID {
		t.Fatalf("hello %+v", hello)
	}

	go func() {
		// The request runs while the stream is read; its answer is checked by the events.
		_, _ = httpDoCtx(ctx, "POST", srv.URL+"/v1/messages", `{"type":"pbft_execute","msg_id":1,"operation":"set a=1","client":"t"}`)
	}()
	executed := map[string]bool{}
	sawPrePrepare := false
	for len(executed) < 4 || !sawPrePrepare {
		l := next()
		if !strings.HasPrefix(l, "data: ") {
			continue
		}
		var e trace.Event
		if err := json.Unmarshal([]byte(l[len("data: "):]), &e); err != nil {
			t.Fatalf("bad event line %q: %v", l, err)
		}
		switch {
		case e.Type == trace.Executed && e.Seq == 1:
			executed[e.Node] = true
		case e.Type == trace.Send && e.Kind == "preprepare":
			if e.Node != "n1" || e.Seq != 1 || e.View != 0 || e.Client != "t" {
				t.Fatalf("pre-prepare %+v", e)
			}
			// Under load the primary may also resend it to a lagging backup (point to
			// point); the first send is the broadcast.
			sawPrePrepare = sawPrePrepare || e.To == trace.Broadcast
		}
	}
}

func httpDoCtx(ctx context.Context, method, url, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

// The stream needs a cluster.
func TestTraceStreamNeedsInit(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	svc := NewService(testSettings(), logger, func(ids []string) (Backend, error) { return nil, nil })
	h := NewHTTPHandler(svc, logger)
	rec := &recorder{h: http.Header{}}
	h.ServeHTTP(rec, mustRequest(t, "GET", "/v1/trace"))
	if rec.code != http.StatusServiceUnavailable || !strings.Contains(rec.body.String(), `"code": 11`) {
		t.Fatalf("GET /v1/trace before init: %d %s", rec.code, rec.body.String())
	}
}

type recorder struct {
	h    http.Header
	code int
	body strings.Builder
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

func mustRequest(t *testing.T, method, url string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// `gateway trace` without PBFT_NATS_URL runs the demo: two rounds in view 0, the
// primary crashed, a view change to view 1 and two rounds ordered by n2.
func TestTraceCommandDemo(t *testing.T) {
	var out strings.Builder
	s := testSettings()
	o := TraceOptions{Nodes: []string{"n1", "n2", "n3", "n4"}, Requests: 4, Crash: true}
	logger := slog.New(slog.DiscardHandler)
	start := func(ids []string, s config.Settings) (Backend, error) { return embedded.Start(ids, s, logger) }
	if err := RunTrace(context.Background(), s, o, &out, logger, start); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^─── #1 view 0 d=[0-9a-f]{8} \(1 request\) primary n1$`),
		regexp.MustCompile(`(?m)^─── #2 view 0 d=[0-9a-f]{8} \(1 request\) primary n1$`),
		regexp.MustCompile(`(?m)^» crash n1 \(the primary\)$`),
		regexp.MustCompile(`(?m)^═══ view change to view 1 \(primary n2\)$`),
		regexp.MustCompile(`(?m)^─── #3 view 1 d=[0-9a-f]{8} \(1 request\) primary n2$`),
		regexp.MustCompile(`(?m)^─── #4 view 1 d=[0-9a-f]{8} \(1 request\) primary n2$`),
		regexp.MustCompile(`(?m)^» set k4=v4: OK at #4 in view 1 \(3 replies\)$`),
		regexp.MustCompile(`(?m)^ executed +│ +■ +■ +■ +■$`), // view 0: all four executed
	} {
		if !want.MatchString(text) {
			t.Errorf("output lacks %s", want)
		}
	}
	// Nothing of the crashed n1 between its crash and its recovery: what it did when it
	// caught up afterwards is drawn after "» recover n1".
	_, crashed, _ := strings.Cut(text, "» crash n1 (the primary)\n")
	crashed, _, recovered := strings.Cut(crashed, "» recover n1\n")
	if !recovered {
		t.Errorf("output lacks the recovery of n1")
	}
	for _, l := range strings.Split(crashed, "\n") {
		// Column n1 is the second, after the label (13) and the client (11): its centre.
		if r := []rune(l); len(r) > 29 && strings.ContainsRune("●◀▶◆■◉", r[29]) {
			t.Errorf("crashed n1 drawn: %q", l)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}
}
