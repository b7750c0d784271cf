package gateway

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/pbft-nats/pbft/bus"
	"github.com/pbft-nats/pbft/pbft/gateway/jsonl"
)

// The NATS-native API: the client protocol as request/reply on pbft.<cluster>.api, with
// the bodies and answers of POST /v1/messages (the same handleRaw), registered with the
// NATS services framework as pbft-gateway so that `nats micro ls|info|stats` show it.

// NATSServiceName is the gateway's name in the NATS services framework.
const NATSServiceName = "pbft-gateway"

// NATSAPIVersion is the version the services framework shows: that of the client
// protocol on the api subject (docs/protocol.md).
const NATSAPIVersion = "1.0.0"

// natsAPIMaxInFlight bounds the requests answered at once. A pbft_execute waits for its
// replies, so each is answered on its own goroutine (the services framework calls a
// handler on the subscription's goroutine, one message after the other); past the bound
// the subscription waits, and NATS buffers what arrives meanwhile.
const natsAPIMaxInFlight = 1024

// NATSAPI is the gateway's registration with the NATS services framework.
type NATSAPI struct {
	svc  *Service
	nc   *nats.Conn
	log  *slog.Logger
	ms   micro.Service
	slot chan struct{}

	mu      sync.Mutex // orders wg.Add before Stop's wg.Wait: draining is asynchronous
	stopped bool
	wg      sync.WaitGroup

	msgID    atomic.Int64 // the API's reply counter, like the HTTP API's
	inFlight atomic.Int64
	errors   atomic.Uint64
}

// natsAPIStats is the api endpoint's own part of `nats micro stats`: the framework counts
// requests, but answers leave after its handler returns, so errors are counted here.
type natsAPIStats struct {
	InFlight int64  `json:"in_flight"`
	Errors   uint64 `json:"error_answers"`
}

// ServeNATS answers the client protocol on pbft.<cluster>.api over nc and registers the
// gateway with the NATS services framework. Stop leaves.
func ServeNATS(nc *nats.Conn, svc *Service, logger *slog.Logger) (*NATSAPI, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	subject, err := bus.APISubject(svc.settings.Cluster)
	if err != nil {
		return nil, err
	}
	a := &NATSAPI{svc: svc, nc: nc, log: logger, slot: make(chan struct{}, natsAPIMaxInFlight)}
	a.ms, err = micro.AddService(nc, micro.Config{
		Name:        NATSServiceName,
		Version:     NATSAPIVersion,
		Description: "PBFT gateway: the client protocol (JSON bodies of POST /v1/messages) as request/reply on " + subject,
		Metadata:    map[string]string{"cluster": svc.settings.Cluster, "client_id": svc.settings.ClientID},
		StatsHandler: func(*micro.Endpoint) any {
			return natsAPIStats{InFlight: a.inFlight.Load(), Errors: a.errors.Load()}
		},
	})
	if err != nil {
		return nil, err
	}
	if err := a.ms.AddEndpoint("api", micro.HandlerFunc(a.handle), micro.WithEndpointSubject(subject)); err != nil {
		_ = a.ms.Stop()
		return nil, err
	}
	// Once the server has the subscriptions, the service is found and asked.
	if err := nc.Flush(); err != nil {
		a.Stop()
		return nil, err
	}
	return a, nil
}

// ServeNATSBackend is ServeNATS on the connection of svc's cluster when that is an
// external NATS (the embedded cluster's server has no listener, so nobody could ask it).
// It returns nil, nil when there is nothing to serve.
func ServeNATSBackend(svc *Service, logger *slog.Logger) (*NATSAPI, error) {
	x, ok := svc.Backend().(*External)
	if !ok {
		return nil, nil
	}
	return ServeNATS(x.nc, svc, logger)
}

// handle answers one request on its own goroutine.
func (a *NATSAPI) handle(req micro.Request) {
	reply := req.Reply()
	if reply == "" {
		return // published, not requested: nobody to answer
	}
	raw := req.Data()
	a.slot <- struct{}{}
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		<-a.slot
		return
	}
	a.wg.Add(1)
	a.mu.Unlock()
	a.inFlight.Add(1)
	go func() {
		defer func() {
			a.inFlight.Add(-1)
			<-a.slot
			a.wg.Done()
		}()
		a.answer(reply, raw)
	}()
}

// answer runs raw through the client protocol and publishes the answer to reply. It
// publishes itself rather than through micro.Request, whose bookkeeping belongs to the
// handler's goroutine. An error answer also carries the framework's error headers.
func (a *NATSAPI) answer(reply string, raw []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), a.svc.settings.RequestTimeout+time.Second)
	defer cancel()
	body, pe := a.svc.handleRaw(ctx, raw)
	body = append(body, jsonl.Field{Key: "msg_id", Value: a.msgID.Add(1) - 1})
	msg := &nats.Msg{Subject: reply, Data: jsonl.Append(nil, body)}
	if pe != nil {
		a.errors.Add(1)
		// A header value ends at a line break, so the text loses its line breaks there.
		text := strings.NewReplacer("\r", " ", "\n", " ").Replace(pe.Text)
		msg.Header = nats.Header{micro.ErrorHeader: {text}, micro.ErrorCodeHeader: {strconv.Itoa(pe.Code)}}
	}
	if err := a.nc.PublishMsg(msg); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		a.log.Warn("NATS API: cannot answer", "err", err)
	}
}

// Stop unregisters the service, stops taking requests and waits for the answers in flight.
func (a *NATSAPI) Stop() {
	if a == nil {
		return
	}
	_ = a.ms.Stop()
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()
	a.wg.Wait()
}
