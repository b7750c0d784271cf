// Package browser drives the gateway's live page (GET /) in headless Chromium: a request
// sent from the page is drawn round by round, pause and step hold and release the
// drawing, and a primary crashed from the page is replaced by a view change that the
// page shows, with the next request ordered by the new primary.
package browser

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pbft-nats/pbft/pbft/config"
	"github.com/pbft-nats/pbft/pbft/gateway"
	"github.com/pbft-nats/pbft/pbft/gateway/embedded"
)

var updateDocs = flag.Bool("update-docs", false, "also write the last screenshot to docs/trace.png")

// chromiumPath finds the browser. Without one the test skips with how to run it, so
// that `go test ./...` passes on a machine with only Go; PBFT_REQUIRE_BROWSER=1 (CI)
// makes a missing browser a failure.
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("PBFT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "headless-shell", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no Chromium found: install it (apt-get install -y chromium) or set PBFT_CHROMIUM to the browser's path"
	if os.Getenv("PBFT_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg + " (PBFT_REQUIRE_BROWSER=1 requires it)")
	}
	t.Skip(msg + " to run this test; PBFT_REQUIRE_BROWSER=1 makes a missing browser a failure")
	return ""
}

// startGateway runs an embedded 4-replica cluster with tracing on behind the network API.
func startGateway(t *testing.T) string {
	s := config.Default()
	s.Trace = true
	logger := slog.New(slog.DiscardHandler)
	svc := gateway.NewService(s, logger, func(ids []string) (gateway.Backend, error) {
		return embedded.Start(ids, s, logger)
	})
	t.Cleanup(svc.Close)
	if err := gateway.InitCluster(svc, []string{"n1", "n2", "n3", "n4"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gateway.NewHTTPHandler(svc, logger))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL
}

type shooter struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	n    int
	last []byte
}

func (s *shooter) shot(name string) {
	s.t.Helper()
	png, err := chromedp.Run(s.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	s.n++
	p := filepath.Join(s.dir, fmt.Sprintf("%02d-%s.png", s.n, name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("screenshot %s", p)
	s.last = png
}

// waitFor polls a JavaScript predicate in the page until it is truthy; on timeout it
// fails with what describe (a JavaScript expression) says about the page.
func waitFor(t *testing.T, ctx context.Context, what, predicate, describe string) {
	t.Helper()
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err := chromedp.Run(pctx, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		state, derr := chromedp.Run(ctx, chromedp.Evaluate[string](describe))
		t.Fatalf("%s: %v\npage: %s %v", what, err, state, derr)
	}
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// roundJS describes a round's arrows: "kind from>to" for every delivered message.
const roundJS = `(sel) => { const g = document.querySelector(sel); if (!g) return "no " + sel;
  return [...g.querySelectorAll("line.msg")].map(l => l.dataset.kind + " " + l.dataset.from + ">" + l.dataset.to).sort().join(", ") +
    " | " + [...g.querySelectorAll(".mark")].map(m => m.dataset.type + "@" + m.dataset.node).sort().join(", "); }`

// fullRound is true when the round at sel shows, for every replica, the pre-prepare from
// primary (backups), the prepares of every other backup and the commits of every other
// replica delivered, and the replica's committed and executed marks.
const fullRoundJS = `(sel, primary, nodes) => { const g = document.querySelector(sel); if (!g) return false;
  const has = (k, f, to) => !!g.querySelector('line.msg[data-kind="' + k + '"][data-from="' + f + '"][data-to="' + to + '"]');
  for (const r of nodes) {
    if (r !== primary && !has("preprepare", primary, r)) return false;
    for (const s of nodes) {
      if (s === r) continue;
      if (s !== primary && !has("prepare", s, r)) return false;
      if (!has("commit", s, r)) return false;
    }
    for (const m of ["prepared", "committed", "executed"])
      if (!g.querySelector('.mark[data-type="' + m + '"][data-node="' + r + '"]')) return false;
    const p = g.querySelector('rect.cert[data-phase="prepare"][data-node="' + r + '"]');
    const c = g.querySelector('rect.cert[data-phase="commit"][data-node="' + r + '"]');
    if (!p || !c || +p.dataset.count < +p.dataset.quorum || +c.dataset.count < +c.dataset.quorum) return false;
  }
  return true; }`

func TestLivePage(t *testing.T) {
	chromium := chromiumPath(t)
	url := startGateway(t)
	dir := os.Getenv("PBFT_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1400, 1500))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/")); err != nil {
		t.Fatalf("starting %s: %v (is Chromium installed? apt-get install -y chromium)", chromium, err)
	}
	shots := &shooter{t: t, ctx: ctx, dir: dir}
	describe := `document.querySelector("#summary").innerText + " | " + document.querySelector("#send-result").innerText`

	// The page connects, learns the cluster and shows n1 as primary of view 0.
	waitFor(t, ctx, "page connected", `document.querySelector('#conn').dataset.state === "open" &&
		document.querySelectorAll('.replica').length === 4 && document.querySelector('#primary').dataset.primary === "n1"`, describe)

	// A request sent from the page is ordered as #1 in view 0 and drawn in full.
	do(t, ctx, chromedp.SetValue(chromedp.CSS("#op"), "set colour=blue"), chromedp.Click(chromedp.CSS("#send-btn")))
	waitFor(t, ctx, "request answered", `document.querySelector('#send-result').dataset.seq === "1"`, describe)
	if v := eval[string](t, ctx, `document.querySelector('#send-result').dataset.view`); v != "0" {
		t.Fatalf("first request ordered in view %s, want 0", v)
	}
	nodes := `["n1","n2","n3","n4"]`
	round1 := `g.round[data-view="0"][data-seq="1"]`
	waitFor(t, ctx, "round 1 drawn", fmt.Sprintf(`(%s)(%q, "n1", %s)`, fullRoundJS, round1, nodes),
		fmt.Sprintf(`(%s)(%q)`, roundJS, round1))
	if got := eval[string](t, ctx, `document.querySelector('g.round[data-view="0"][data-seq="1"]').dataset.primary`); got != "n1" {
		t.Fatalf("round 1 primary %q, want n1", got)
	}
	// The request itself arrives from the client column at the primary, and every
	// replica's reply goes back to it.
	for _, sel := range []string{
		round1 + ` line.msg[data-kind="request"][data-to="n1"]`,
		round1 + ` line.msg[data-kind="reply"][data-from="n1"][data-to="gateway"]`,
		round1 + ` line.msg[data-kind="reply"][data-from="n4"][data-to="gateway"]`,
	} {
		if !eval[bool](t, ctx, fmt.Sprintf(`!!document.querySelector(%q)`, sel)) {
			t.Fatalf("missing %s; round: %s", sel, eval[string](t, ctx, fmt.Sprintf(`(%s)(%q)`, roundJS, round1)))
		}
	}
	shots.shot("round-1")

	// Paused, the page queues what arrives and draws nothing; Step applies one event at a
	// time; Resume draws the rest.
	do(t, ctx, chromedp.Click(chromedp.CSS("#pause")))
	waitFor(t, ctx, "paused", `document.querySelector('#pause').dataset.paused === "true"`, describe)
	do(t, ctx, chromedp.SetValue(chromedp.CSS("#op"), "get colour"), chromedp.Click(chromedp.CSS("#send-btn")))
	waitFor(t, ctx, "request answered while paused", `document.querySelector('#send-result').dataset.seq === "2"`, describe)
	waitFor(t, ctx, "events queued", `+document.querySelector('#queued').dataset.queued > 20`, describe)
	if eval[bool](t, ctx, `!!document.querySelector('g.round[data-seq="2"]')`) {
		t.Fatal("round 2 drawn while paused")
	}
	applied := eval[int](t, ctx, `+document.querySelector('#queued').dataset.applied`)
	for i := 1; i <= 3; i++ {
		do(t, ctx, chromedp.Click(chromedp.CSS("#step")))
		waitFor(t, ctx, "one step", fmt.Sprintf(`+document.querySelector('#queued').dataset.applied === %d`, applied+i), describe)
	}
	do(t, ctx, chromedp.Click(chromedp.CSS("#pause")))
	waitFor(t, ctx, "round 2 drawn after resuming", fmt.Sprintf(`(%s)(%q, "n1", %s)`, fullRoundJS, `g.round[data-view="0"][data-seq="2"]`, nodes),
		fmt.Sprintf(`(%s)(%q)`, roundJS, `g.round[data-view="0"][data-seq="2"]`))

	// Crash the primary from the page; the next request forces a view change to view 1,
	// whose primary n2 orders it.
	do(t, ctx, chromedp.Click(chromedp.CSS(`.replica[data-node="n1"] button[data-fault-action="crash"]`)))
	waitFor(t, ctx, "n1 shown crashed", `document.querySelector('.replica[data-node="n1"]').dataset.fault === "crash"`, describe)
	do(t, ctx, chromedp.SetValue(chromedp.CSS("#op"), "set colour=red"), chromedp.Click(chromedp.CSS("#send-btn")))
	waitFor(t, ctx, "request answered after the crash", `document.querySelector('#send-result').dataset.seq !== undefined`, describe)
	res := eval[[]string](t, ctx, `[document.querySelector('#send-result').dataset.seq, document.querySelector('#send-result').dataset.view]`)
	seq, _ := strconv.Atoi(res[0])
	view, _ := strconv.Atoi(res[1])
	ids := []string{"n1", "n2", "n3", "n4"}
	// Normally view 1 (primary n2); a slow machine may need another view change, but
	// never one back to the crashed n1.
	primary := ids[view%len(ids)]
	if seq < 3 || view < 1 || primary == "n1" {
		t.Fatalf("request after the crash: #%d in view %d, want a later number in a view whose primary is not n1 (%s)",
			seq, view, eval[string](t, ctx, describe))
	}
	var backups []string
	for _, id := range ids[1:] {
		if id != primary {
			backups = append(backups, id)
		}
	}
	waitFor(t, ctx, "new view shown", fmt.Sprintf(`document.querySelector('#view').dataset.view === "%d" &&
		document.querySelector('#primary').dataset.primary === %q &&
		!!document.querySelector('g.band.viewchange[data-view="%d"] .bandmark.entered[data-node=%q]')`, view, primary, view, primary), describe)
	round2 := fmt.Sprintf(`g.round[data-view="%d"][data-seq="%d"]`, view, seq)
	waitFor(t, ctx, "round ordered by the new primary", fmt.Sprintf(`((sel, primary, backups) => { const g = document.querySelector(sel);
		return !!g && g.dataset.primary === primary &&
			backups.every(r => g.querySelector('line.msg[data-kind="preprepare"][data-from="' + primary + '"][data-to="' + r + '"]')) &&
			[primary, ...backups].every(r => g.querySelector('.mark[data-type="executed"][data-node="' + r + '"]')) &&
			!g.querySelector('line.msg[data-to="n1"]'); })(%q, %q, ["%s"])`, round2, primary, strings.Join(backups, `","`)),
		fmt.Sprintf(`(%s)(%q)`, roundJS, round2))
	shots.shot("view-change")

	if *updateDocs {
		p := filepath.Join("..", "..", "docs", "trace.png")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, shots.last, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
