package faultproxy

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards connections on its own loopback address to a target.
type Proxy struct {
	ln net.Listener
	wg sync.WaitGroup

	mu      sync.Mutex
	target  string
	down    bool
	stalled bool
	conns   []net.Conn
}

// New listens on a fresh loopback port and forwards to target (which may
// be set later with SetTarget). It stops when the test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: target, ln: ln}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.SetDown(true)
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetTarget changes where new connections go.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down || p.target == "" {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		if p.stalled {
			// Accepted and held: the client waits for an answer that
			// never comes, until it gives up by itself.
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			continue
		}
		var d net.Dialer
		up, err := d.DialContext(context.Background(), "tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.wg.Add(2)
		p.mu.Unlock()
		go func() { defer p.wg.Done(); _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() { defer p.wg.Done(); _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

// SetStalled(true) closes every open connection and holds new ones open
// without forwarding a byte, until SetStalled(false): a peer that accepts
// and never answers.
func (p *Proxy) SetStalled(stalled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = stalled
	if stalled {
		p.closeAllLocked()
	}
}

// SetDown(true) closes every open connection and refuses new ones until
// SetDown(false).
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		p.closeAllLocked()
	}
}

// closeAllLocked closes every connection the proxy holds; p.mu must be held.
func (p *Proxy) closeAllLocked() {
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}
