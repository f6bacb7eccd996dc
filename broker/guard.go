package main

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Connection limits, in front of mochi. mochi reads CONNECT with no deadline and buffers
// whatever length the fixed header announces (up to maxPacketSize), so without these a
// few thousand slow connections hold a broker's memory and every connection slot.
//
//   - a deadline for CONNECT: a connection that has not been accepted by OnConnect within
//     ConnectTimeout (TLS handshake included) is closed (mochi then keeps the keepalive
//     deadline of an accepted client);
//   - a cap on connections not yet accepted, per remote IP address and in all, so one host
//     cannot hold every pending slot and lock others (the gateways) out;
//   - a cap on all connections.
//
// A connection over any cap is closed at once, before a byte is read, and counted.
type Limits struct {
	ConnectTimeout  time.Duration // default 10 s
	MaxConnections  int           // all connections, accepted or not; default 10,000
	MaxPending      int           // connections not yet accepted; default 1,024
	MaxPendingPerIP int           // the same, from one remote IP address; default 64
}

// DefaultLimits: a device sends CONNECT right after TCP (and TLS) connects; 10 s is ample
// on a slow cellular link and bounds what a slow client holds.
var DefaultLimits = Limits{
	ConnectTimeout:  10 * time.Second,
	MaxConnections:  10_000,
	MaxPending:      1024,
	MaxPendingPerIP: 64,
}

func (l Limits) withDefaults() Limits {
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = DefaultLimits.ConnectTimeout
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultLimits.MaxConnections
	}
	if l.MaxPending <= 0 {
		l.MaxPending = DefaultLimits.MaxPending
	}
	if l.MaxPendingPerIP <= 0 {
		l.MaxPendingPerIP = DefaultLimits.MaxPendingPerIP
	}
	return l
}

// Reasons for connections closed by the guard, as counted and logged.
const (
	refuseTooMany      = "too_many_connections"
	refusePending      = "too_many_pending"
	refusePendingPerIP = "too_many_pending_from_ip"
)

// connGuard is the state every listener of one broker shares.
type connGuard struct {
	limits Limits
	log    *slog.Logger
	stats  *Counters

	mu        sync.Mutex
	open      int
	pending   int
	pendingIP map[string]int
}

func newConnGuard(limits Limits, log *slog.Logger, stats *Counters) *connGuard {
	return &connGuard{limits: limits.withDefaults(), log: log, stats: stats, pendingIP: map[string]int{}}
}

// admit takes the slots for a new connection, or says why not.
func (g *connGuard) admit(ip string) (ok bool, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.open >= g.limits.MaxConnections:
		return false, refuseTooMany
	case g.pending >= g.limits.MaxPending:
		return false, refusePending
	case g.pendingIP[ip] >= g.limits.MaxPendingPerIP:
		return false, refusePendingPerIP
	}
	g.open++
	g.pending++
	g.pendingIP[ip]++
	return true, ""
}

func (g *connGuard) releasePending(ip string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending--
	if g.pendingIP[ip]--; g.pendingIP[ip] <= 0 {
		delete(g.pendingIP, ip)
	}
}

func (g *connGuard) releaseOpen() {
	g.mu.Lock()
	g.open--
	g.mu.Unlock()
}

// counts returns the connections open and pending now (for tests).
func (g *connGuard) counts() (open, pending int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open, g.pending
}

// guardedListener applies the guard to every connection its inner listener accepts.
type guardedListener struct {
	net.Listener
	guard *connGuard
	id    string
}

func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if ok, reason := l.guard.admit(ip); !ok {
			_ = c.Close()
			l.guard.stats.refusedConnection(reason)
			// Rate-limited by the broker's log handler (logratelimit.go), like every line.
			l.guard.log.Warn("connection refused", "event", "connection_refused", "reason", reason,
				"listener", l.id, "remote", ip)
			continue
		}
		_ = c.SetDeadline(time.Now().Add(l.guard.limits.ConnectTimeout))
		return &guardedConn{Conn: c, guard: l.guard, ip: ip}, nil
	}
}

// guardedConn releases its slots when closed; established() ends its pending state.
type guardedConn struct {
	net.Conn
	guard       *connGuard
	ip          string
	mu          sync.Mutex
	established bool
	closed      bool
}

func (c *guardedConn) markEstablished() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.established || c.closed {
		return
	}
	c.established = true
	c.guard.releasePending(c.ip)
}

func (c *guardedConn) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		if !c.established {
			c.guard.releasePending(c.ip)
		}
		c.guard.releaseOpen()
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// markEstablished ends the pending state of a client's connection (OnConnect calls it once
// the CONNECT is accepted). A TLS connection is unwrapped to the guarded one underneath.
func markEstablished(c net.Conn) {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	if g, ok := c.(*guardedConn); ok {
		g.markEstablished()
	}
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}
