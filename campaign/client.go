package campaign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pbft-nats/pbft/internal/poll"
)

// KVClient talks to the gateway's key-value facade.
type KVClient struct {
	base string
	http *http.Client
}

// NewKVClient returns a client of the gateway at base (http://host:port); timeout
// bounds each request (longer than the gateway's own request timeout, so that the
// gateway's 504 normally answers first).
func NewKVClient(base string, timeout time.Duration) *KVClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	return &KVClient{base: strings.TrimSuffix(base, "/"), http: &http.Client{Timeout: timeout, Transport: tr}}
}

// Close drops idle connections.
func (c *KVClient) Close() { c.http.CloseIdleConnections() }

// Result is the outcome of one request.
type Result struct {
	Status  Status
	HTTP    int
	Value   string // get: the body
	Err     string
	Seq     uint64
	Replies int
	// Ordered is X-PBFT-Ordered: an ordered request gave a read's answer.
	Ordered bool
	// Refused: the connection was refused, so the request was never sent.
	Refused bool
}

// Do runs one operation (a get on the read-only path) and classifies the outcome: 2xx
// ok, 4xx or a refused connection (nothing was sent: the gateway is restarting) a
// definite failure, anything else (5xx, timeout, other connection errors) indeterminate.
func (c *KVClient) Do(ctx context.Context, kind Kind, key, value string) Result {
	return c.do(ctx, kind, key, value, false)
}

// Read gets key on the read-only path, or with ordered through an ordered request
// (?ordered=true); Result.Ordered says which path answered.
func (c *KVClient) Read(ctx context.Context, key string, ordered bool) Result {
	return c.do(ctx, KindGet, key, "", ordered)
}

func (c *KVClient) do(ctx context.Context, kind Kind, key, value string, ordered bool) Result {
	url := c.base + "/v1/kv/" + key
	if ordered {
		url += "?ordered=true"
	}
	var req *http.Request
	var err error
	switch kind {
	case KindSet:
		req, err = http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader(value))
	case KindDel:
		req, err = http.NewRequestWithContext(ctx, http.MethodDelete, url, nil)
	default:
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	}
	if err != nil {
		return Result{Status: StatusFail, Err: err.Error()}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return Result{Status: StatusFail, Err: err.Error(), Refused: true}
		}
		return Result{Status: StatusInfo, Err: err.Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	r := Result{HTTP: resp.StatusCode}
	r.Seq, _ = strconv.ParseUint(resp.Header.Get("X-PBFT-Seq"), 10, 64)
	r.Replies, _ = strconv.Atoi(resp.Header.Get("X-PBFT-Replies"))
	r.Ordered, _ = strconv.ParseBool(resp.Header.Get("X-PBFT-Ordered"))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if err != nil {
			// The answer was acknowledged but not fully read: for a write it took
			// effect; for a read the value is unknown.
			r.Status, r.Err = StatusInfo, err.Error()
			if kind != KindGet {
				r.Status = StatusOK
			}
			return r
		}
		r.Status = StatusOK
		if kind == KindGet {
			r.Value = string(body)
		}
	case kind == KindGet && resp.StatusCode == http.StatusNotFound:
		r.Status = StatusOK // the key is not set: the model reads it as ""
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		r.Status, r.Err = StatusFail, strings.TrimSpace(string(body))
	default:
		r.Status, r.Err = StatusInfo, strings.TrimSpace(string(body))
	}
	return r
}

// Workload is the clients' random mix.
type Workload struct {
	Clients int
	Keys    int
	// Percentages of reads and deletes; the rest are writes.
	ReadPct, DeletePct int
	// OrderedPct is the percentage of reads sent with ?ordered=true; the rest take the
	// read-only path (0: half; negative: none).
	OrderedPct int
	// Think is each client's pause between operations (0: none), to keep the history
	// of a long run to a size porcupine checks quickly.
	Think time.Duration
}

// KeyName is the name of key i.
func KeyName(i int) string { return "k" + strconv.Itoa(i) }

// runClients runs w.Clients closed-loop clients until ctx ends, recording into h.
// Each client has its own random source derived from seed. A request in flight when
// ctx ends completes, unless abort ends too (the run was interrupted): then it is
// cancelled and recorded as indeterminate.
func runClients(ctx, abort context.Context, c *KVClient, w Workload, seed uint64, h *History) {
	var wg sync.WaitGroup
	for i := range w.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runClient(ctx, abort, c, w, i, seed, h)
		}()
	}
	wg.Wait()
}

func runClient(ctx, abort context.Context, c *KVClient, w Workload, id int, seed uint64, h *History) {
	rng := rand.New(rand.NewPCG(seed, uint64(id)+1))
	process := id
	for n := 0; ctx.Err() == nil; n++ {
		key := KeyName(rng.IntN(w.Keys))
		var kind Kind
		switch p := rng.IntN(100); {
		case p < w.ReadPct:
			kind = KindGet
		case p < w.ReadPct+w.DeletePct:
			kind = KindDel
		default:
			kind = KindSet
		}
		value := ""
		if kind == KindSet {
			value = fmt.Sprintf("c%d-%d", id, n)
		}
		// Reads take both paths: porcupine checks them as the same get.
		ordered := kind == KindGet && rng.IntN(100) < w.OrderedPct
		invoke := h.Now()
		// A request in flight when the clients' time is up is not cancelled: its
		// outcome is still part of the history.
		r := c.do(abort, kind, key, value, ordered)
		op := Op{Process: process, Client: id, Kind: kind, Key: key, Value: value, Status: r.Status,
			Invoke: invoke, Complete: h.Now(), HTTP: r.HTTP, Error: r.Err, Seq: r.Seq, Replies: r.Replies}
		if kind == KindGet {
			op.Value, op.OrderedAsked, op.Ordered = r.Value, ordered, r.Ordered
		}
		h.Add(op)
		if r.Status == StatusInfo {
			process += w.Clients // Jepsen: a crashed process is replaced by a new one
		}
		if r.Refused && !wait(ctx, refusedPause) {
			return // the gateway restarts (it follows a reconfiguration): do not spin
		}
		if w.Think > 0 && !wait(ctx, w.Think) {
			return
		}
	}
}

// refusedPause is how long a client waits after a refused connection.
const refusedPause = 20 * time.Millisecond

// errNotReady reports a cluster that did not serve in time.
var errNotReady = errors.New("campaign: cluster not ready")

// waitServing polls until a read of key k0 succeeds.
func waitServing(ctx context.Context, c *KVClient, timeout time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last Result
	err := poll.Until(pctx, 200*time.Millisecond, func() (bool, error) {
		// A read may finish after the deadline: its answer still counts.
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		last = c.Do(rctx, KindGet, KeyName(0), "")
		return last.Status == StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("%w after %v: last answer %d %s", errNotReady, timeout, last.HTTP, last.Err)
	}
	return nil
}
