package gateway

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
	"github.com/pbft-nats/pbft/pbft/obs"
)

// maxHTTPBody bounds a request body of the network API.
const maxHTTPBody = 1 << 20

// httpClient is the PBFT client name of the key-value facade's requests.
const httpClient = "http"

// InitCluster initialises svc as the first of ids with the cluster ids, exactly as an
// init line {"node_id": ids[0], "node_ids": ids} would.
func InitCluster(svc *Service, ids []string) error {
	if len(ids) == 0 {
		return protoErr(CodeMalformed, "no node ids")
	}
	names := make([]any, len(ids))
	for i, id := range ids {
		names[i] = id
	}
	body := jsonl.Object{{Key: "type", Value: "init"}, {Key: "msg_id", Value: 0},
		{Key: "node_id", Value: ids[0]}, {Key: "node_ids", Value: names}}
	line := jsonl.Append(nil, jsonl.Object{{Key: "src", Value: "gateway"}, {Key: "dest", Value: ids[0]}, {Key: "body", Value: body}})
	l, err := jsonl.Parse(line)
	if err != nil {
		return err
	}
	return svc.Init(l)
}

// httpAPI is the gateway's network mode.
type httpAPI struct {
	svc *Service
	log *slog.Logger

	msgID atomic.Int64  // the process's reply counter, like stdio's
	ts    atomic.Uint64 // timestamps of the key-value facade's requests

	metrics *httpMetrics // metrics.go
}

// NewHTTPHandler returns the network API over svc: POST /v1/messages, the key-value
// facade /v1/kv/{key}, /healthz, /readyz, /metrics and, with PBFT_PPROF=on,
// /debug/pprof/.
func NewHTTPHandler(svc *Service, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &httpAPI{svc: svc, log: logger, metrics: newHTTPMetrics(svc)}
	a.ts.Store(uint64(time.Now().UnixNano()))
	mux := http.NewServeMux()
	mux.Handle("POST /v1/messages", a.count("/v1/messages", a.messages))
	mux.Handle("PUT /v1/kv/{key}", a.count("/v1/kv", a.kvPut))
	mux.Handle("GET /v1/kv/{key}", a.count("/v1/kv", a.kvGet))
	mux.Handle("DELETE /v1/kv/{key}", a.count("/v1/kv", a.kvDelete))
	mux.Handle("GET /healthz", a.count("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	}))
	mux.Handle("GET /readyz", a.count("/readyz", a.readyz))
	mux.Handle("GET /metrics", a.count("/metrics", obs.MetricsHandler(a.metrics.reg, logger).ServeHTTP))
	if svc.settings.Pprof {
		obs.MountPprof(mux) // not counted: a profile takes its time on purpose
	}
	a.traceRoutes(mux) // trace.go: the live page and its event stream
	unmatched := a.count("unmatched", func(w http.ResponseWriter, r *http.Request) { a.noRoute(mux, w, r) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			unmatched.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// noRoute answers a request no route matches with the mux's status (404, 405 with its
// Allow header, or a redirect) but a JSON error body.
func (a *httpAPI) noRoute(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	rec := &discardWriter{h: http.Header{}, code: http.StatusNotFound}
	mux.ServeHTTP(rec, r)
	for _, h := range []string{"Allow", "Location"} {
		if v := rec.h.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	a.writeError(w, rec.code, CodeNotSupported, fmt.Sprintf("%s %s: %s", r.Method, r.URL.Path, strings.ToLower(http.StatusText(rec.code))))
}

// discardWriter keeps a response's header and status and drops its body.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// count instruments h as route: requests by status, latency by outcome, in flight.
func (a *httpAPI) count(route string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.metrics.inFlight.Inc()
		defer a.metrics.inFlight.Dec()
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		a.metrics.observe(route, rec.code, time.Since(start))
	})
}

// ctx bounds a handler's work by the request's context and the request timeout (plus a
// margin, so that the service's own timeout answers first).
func (a *httpAPI) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.svc.settings.RequestTimeout+time.Second)
}

// httpStatus maps a protocol error code to an HTTP status.
func httpStatus(code int) int {
	switch code {
	case CodeNotSupported, CodeMalformed:
		return http.StatusBadRequest
	case CodePreconditionFail:
		return http.StatusConflict
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

func (a *httpAPI) writeJSON(w http.ResponseWriter, status int, body jsonl.Object) {
	body = append(body, jsonl.Field{Key: "msg_id", Value: a.msgID.Add(1) - 1})
	buf := jsonl.Append(nil, body)
	buf = append(buf, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(status)
	_, _ = w.Write(buf)
}

// writeError answers with a protocol error object that replies to no message.
func (a *httpAPI) writeError(w http.ResponseWriter, status, code int, text string) {
	a.writeJSON(w, status, jsonl.Object{{Key: "type", Value: "error"}, {Key: "in_reply_to", Value: nil},
		{Key: "code", Value: code}, {Key: "text", Value: text}})
}

// readBody reads a bounded request body; false means an error was already written.
func (a *httpAPI) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHTTPBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.writeError(w, http.StatusRequestEntityTooLarge, CodeMalformed, fmt.Sprintf("body larger than %d bytes", maxHTTPBody))
		} else {
			a.writeError(w, http.StatusBadRequest, CodeMalformed, fmt.Sprintf("cannot read body: %v", err))
		}
		return nil, false
	}
	return b, true
}

// parseMessage accepts a message body, or a whole line {"src", "dest", "body"}.
func parseMessage(raw []byte) (*jsonl.Line, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil || top == nil {
		return nil, errors.New("body is not a JSON object")
	}
	if b, ok := top["body"]; ok && len(bytes.TrimSpace(b)) > 0 && bytes.TrimSpace(b)[0] == '{' {
		if _, hasType := top["type"]; !hasType {
			return jsonl.Parse(raw)
		}
	}
	line := append([]byte(`{"src":"`+httpClient+`","body":`), raw...)
	line = append(line, '}')
	return jsonl.Parse(line)
}

// messages handles POST /v1/messages.
func (a *httpAPI) messages(w http.ResponseWriter, r *http.Request) {
	raw, ok := a.readBody(w, r)
	if !ok {
		return
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	body, perr := a.svc.handleRaw(ctx, raw)
	status := http.StatusOK
	if perr != nil {
		status = httpStatus(perr.Code)
	}
	a.writeJSON(w, status, body)
}

// handleRaw answers one message as POST /v1/messages and the NATS API (natsapi.go) take
// it, a body or a whole line (parseMessage), through Handle: the answer body without
// msg_id, and the protocol error when the answer is one.
func (s *Service) handleRaw(ctx context.Context, raw []byte) (jsonl.Object, *ProtoError) {
	l, err := parseMessage(raw)
	if err != nil {
		pe := protoErr(CodeMalformed, "malformed message: %v", err)
		return errorBody(nil, pe), pe
	}
	body, pe := s.Handle(ctx, l, handleHooks{})
	if pe != nil {
		return errorBody(l, pe), pe
	}
	return body, nil
}

// kvKey validates the key of /v1/kv/{key}; false means an error was already written.
func (a *httpAPI) kvKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	key := r.PathValue("key")
	switch {
	case key == "":
		a.writeError(w, http.StatusBadRequest, CodeMalformed, "empty key")
	case !utf8.ValidString(key):
		a.writeError(w, http.StatusBadRequest, CodeMalformed, "key is not valid UTF-8")
	case strings.ContainsRune(key, '=') || strings.ContainsFunc(key, unicode.IsSpace):
		a.writeError(w, http.StatusBadRequest, CodeMalformed, "key must not contain '=' or white space")
	default:
		return key, true
	}
	return "", false
}

// kvExecute runs op through PBFT; false means an error was already written.
func (a *httpAPI) kvExecute(w http.ResponseWriter, r *http.Request, op string) (ExecuteResult, bool) {
	if !a.svc.Initialised() {
		a.writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "cluster not initialised")
		return ExecuteResult{}, false
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	res, err := a.svc.Execute(ctx, "", RequestArgs{Operation: op, Client: httpClient, Timestamp: a.ts.Add(1)})
	if err != nil {
		pe := asProtoError(err)
		a.writeError(w, httpStatus(pe.Code), pe.Code, pe.Text)
		return ExecuteResult{}, false
	}
	w.Header().Set("X-PBFT-Seq", strconv.FormatUint(res.Seq, 10))
	w.Header().Set("X-PBFT-Replies", strconv.Itoa(res.Replies))
	if strings.HasPrefix(res.Result, "error: ") {
		a.writeError(w, http.StatusBadRequest, CodeMalformed, res.Result)
		return ExecuteResult{}, false
	}
	return res, true
}

// kvRead runs a get through the read-only path, or ordered with ?ordered=true; false
// means an error was already written. X-PBFT-Ordered says which path answered.
func (a *httpAPI) kvRead(w http.ResponseWriter, r *http.Request, op string) (ReadResult, bool) {
	if !a.svc.Initialised() {
		a.writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "cluster not initialised")
		return ReadResult{}, false
	}
	ordered, err := strconv.ParseBool(cmp.Or(r.URL.Query().Get("ordered"), "false"))
	if err != nil {
		a.writeError(w, http.StatusBadRequest, CodeMalformed, "ordered must be true or false")
		return ReadResult{}, false
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	res, err := a.svc.Read(ctx, "", RequestArgs{Operation: op, Client: httpClient, Timestamp: a.ts.Add(1),
		Restamp: func() uint64 { return a.ts.Add(1) }}, ordered)
	if err != nil {
		pe := asProtoError(err)
		a.writeError(w, httpStatus(pe.Code), pe.Code, pe.Text)
		return ReadResult{}, false
	}
	w.Header().Set("X-PBFT-Seq", strconv.FormatUint(res.Seq, 10))
	w.Header().Set("X-PBFT-Replies", strconv.Itoa(res.Replies))
	w.Header().Set("X-PBFT-Ordered", strconv.FormatBool(res.Ordered))
	if strings.HasPrefix(res.Result, "error: ") {
		a.writeError(w, http.StatusBadRequest, CodeMalformed, res.Result)
		return ReadResult{}, false
	}
	return res, true
}

func (a *httpAPI) kvPut(w http.ResponseWriter, r *http.Request) {
	key, ok := a.kvKey(w, r)
	if !ok {
		return
	}
	val, ok := a.readBody(w, r)
	if !ok {
		return
	}
	if !utf8.Valid(val) {
		a.writeError(w, http.StatusBadRequest, CodeMalformed, "value is not valid UTF-8")
		return
	}
	if _, ok := a.kvExecute(w, r, "set "+key+"="+string(val)); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *httpAPI) kvGet(w http.ResponseWriter, r *http.Request) {
	key, ok := a.kvKey(w, r)
	if !ok {
		return
	}
	if res, ok := a.kvRead(w, r, "get "+key); ok {
		if res.Absent {
			a.writeError(w, http.StatusNotFound, CodeKeyNotFound, fmt.Sprintf("key %q is not set", key))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(res.Result)))
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, res.Result)
	}
}

func (a *httpAPI) kvDelete(w http.ResponseWriter, r *http.Request) {
	key, ok := a.kvKey(w, r)
	if !ok {
		return
	}
	if _, ok := a.kvExecute(w, r, "del "+key); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

// readyz answers 200 once the cluster answers a pbft_cluster query within a second.
func (a *httpAPI) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !a.svc.Initialised() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "not initialised\n")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	cl, err := a.svc.Cluster(ctx, "")
	answered := 0
	for _, rep := range cl.Replicas {
		if rep.Fault != "unreachable" {
			answered++
		}
	}
	if _, q := a.svc.members(); err != nil || ctx.Err() != nil || answered < q.Weak() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %d replicas answered\n", answered)
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

// ListenAndServe serves NewHTTPHandler(svc) on addr until ctx is done, then shuts the
// server down gracefully (waiting at most the request timeout plus a second for
// requests in flight).
func ListenAndServe(ctx context.Context, addr string, svc *Service, logger *slog.Logger) error {
	ln, err := obs.Listen(addr)
	if err != nil {
		return err
	}
	return obs.Serve(ctx, ln, NewHTTPHandler(svc, logger), logger.With("server", "gateway"), svc.settings.RequestTimeout+time.Second)
}
