package topology

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of one or more upstream addresses (NATS
// servers). Each accepted connection is forwarded to the first upstream that accepts a
// connection, trying them in turn from a rotating start, so a client keeps finding a
// live server when one goes down. Cut drops every connection and refuses new ones
// (they are accepted and closed at once, which a client sees as a failed connect);
// Heal accepts again.
type Proxy struct {
	ln        net.Listener
	upstreams []string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	next  int
	done  bool

	wg sync.WaitGroup
}

// NewProxy listens on a free 127.0.0.1 port and forwards to upstreams (host:port).
func NewProxy(upstreams ...string) (*Proxy, error) {
	if len(upstreams) == 0 {
		return nil, errors.New("topology: proxy without upstreams")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, upstreams: append([]string(nil), upstreams...), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every proxied connection and refuses new ones until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Heal accepts connections again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// IsCut reports whether the proxy is cut.
func (p *Proxy) IsCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// Close stops the proxy, closes its connections and waits for its goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.done = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

// track registers c unless the proxy is cut or closed.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.done {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if !p.track(c) {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// dial connects to the first upstream that answers, starting at a rotating index.
func (p *Proxy) dial() (net.Conn, error) {
	p.mu.Lock()
	start := p.next
	p.next++
	p.mu.Unlock()
	var lastErr error
	for i := range p.upstreams {
		addr := p.upstreams[(start+i)%len(p.upstreams)]
		u, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return u, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	u, err := p.dial()
	if err != nil {
		p.untrack(c)
		_ = c.Close()
		return
	}
	if !p.track(u) { // cut or closed while dialling
		p.untrack(c)
		_ = c.Close()
		_ = u.Close()
		return
	}
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			_ = c.Close()
			_ = u.Close()
			p.untrack(c, u)
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(u, c); closeBoth() }()
	go func() { defer wg.Done(); _, _ = io.Copy(c, u); closeBoth() }()
	wg.Wait()
}
