package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// idleSet holds connections that completed the HTTP/2 handshake with the
// server and then say nothing: what an idle gRPC client channel is on the
// wire. A grpc.ClientConn per connection would cost this process tens of
// kilobytes and goroutines each; a bare socket costs a descriptor.
type idleSet struct {
	conns []net.Conn
	// maxStreams is the MAX_CONCURRENT_STREAMS the server advertised.
	maxStreams uint32
}

// openIdle opens n connections to addr, 64 at a time, each through the
// client preface and the exchange of SETTINGS and their ACKs. The ACK of
// this side's SETTINGS comes from the server's transport once its reader
// and writer goroutines run, so when openIdle returns the server holds n
// fully set-up connections. On any failure it closes what it opened.
func openIdle(ctx context.Context, addr string, n int) (*idleSet, error) {
	// 10k handshakes take a few seconds on loopback; a minute and a
	// half is a stuck server, not a slow one.
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	s := &idleSet{conns: make([]net.Conn, n)}
	var next, failed atomic.Int64
	var once sync.Once
	var firstErr error
	var maxStreams atomic.Uint32
	var wg sync.WaitGroup
	for range min(n, 64) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c, ms, err := handshake(ctx, addr)
				if err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err; cancel() })
					continue
				}
				s.conns[i] = c
				maxStreams.Store(ms)
			}
		})
	}
	wg.Wait()
	s.maxStreams = maxStreams.Load()
	if firstErr != nil {
		opened := 0
		for _, c := range s.conns {
			if c != nil {
				opened++
			}
		}
		s.close()
		return nil, fmt.Errorf("opened %d of %d connections (%d failed): %w", opened, n, failed.Load(), firstErr)
	}
	return s, nil
}

// handshake dials addr and completes the HTTP/2 connection preface as a
// gRPC client does: preface, SETTINGS, then both sides' SETTINGS
// acknowledged. It returns the server's MAX_CONCURRENT_STREAMS (0: none
// advertised).
func handshake(ctx context.Context, addr string) (net.Conn, uint32, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	deadline := time.Now().Add(10 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.SetDeadline(deadline)
	ms, err := preface(c)
	if err != nil {
		_ = c.Close()
		return nil, 0, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, ms, nil
}

func preface(c net.Conn) (uint32, error) {
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return 0, err
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return 0, err
	}
	var settings, acked bool
	var maxStreams uint32
	for !settings || !acked {
		f, err := fr.ReadFrame()
		if err != nil {
			return 0, fmt.Errorf("reading the server's SETTINGS: %w", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				acked = true
				continue
			}
			settings = true
			if v, ok := f.Value(http2.SettingMaxConcurrentStreams); ok {
				maxStreams = v
			}
			if err := fr.WriteSettingsAck(); err != nil {
				return 0, err
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				if err := fr.WritePing(true, f.Data); err != nil {
					return 0, err
				}
			}
		case *http2.GoAwayFrame:
			return 0, fmt.Errorf("server sent GOAWAY (%s) during the handshake", f.ErrCode)
		}
	}
	return maxStreams, nil
}

// close resets every connection (SO_LINGER 0): 16k connections closed
// the polite way would leave as many ephemeral ports in TIME_WAIT, over
// half of Linux's default range, for the next level to trip on.
func (s *idleSet) close() {
	for i, c := range s.conns {
		if c == nil {
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		s.conns[i] = nil
	}
}

// check reads each connection for at most a millisecond, 64 at a time,
// and counts those the server has closed and those it has sent something
// since the handshake (a PING, a GOAWAY), which an idle client would have
// to answer or heed.
func (s *idleSet) check() (closed, spoke int) {
	var nclosed, nspoke, next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(s.conns), 64) {
		wg.Go(func() {
			b := make([]byte, 1)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(s.conns) {
					return
				}
				c := s.conns[i]
				_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
				n, err := c.Read(b)
				_ = c.SetReadDeadline(time.Time{})
				switch {
				case n > 0:
					nspoke.Add(1)
				case errors.Is(err, os.ErrDeadlineExceeded):
				default:
					nclosed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(nclosed.Load()), int(nspoke.Load())
}

// errLevelTooLong is reported when a level held its connections longer
// than the server lets a connection live.
var errLevelTooLong = errors.New("connections held past the earliest GRPC_MAX_CONNECTION_AGE")
