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
//   - a cap on all connections;
//   - a first packet that is a CONNECT of at most maxConnectSize bytes.
//
// A connection over any cap is closed at once, before a byte is read, and counted.
type Limits struct {
	ConnectTimeout  time.Duration // default 10 s
	MaxConnections  int           // all connections, accepted or not; default 10,000
	MaxPending      int           // connections not yet accepted; default 1,024
	MaxPendingPerIP int           // the same, from one remote IP address; default 256
}

// DefaultLimits: a device sends CONNECT right after TCP (and TLS) connects; 10 s is ample
// on a slow cellular link and bounds what a slow client holds. 256 pending per address
// lets a whole site behind one NAT address (or a test fleet on loopback) reconnect at once,
// and holds one host to a quarter of the pending slots (at most 256 x 64 KiB of buffers).
var DefaultLimits = Limits{
	ConnectTimeout:  10 * time.Second,
	MaxConnections:  10_000,
	MaxPending:      1024,
	MaxPendingPerIP: 256,
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
			// Counted before the close, so a client that sees the close also sees the count.
			l.guard.stats.refusedConnection(reason)
			_ = c.Close()
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
	if f, ok := c.(*firstPacketConn); ok {
		c = f.Conn
	}
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

// maxConnectSize bounds the first packet. A CONNECT carries a client id (at most 128
// bytes), a username (the OTA's is under 1 KiB), a password and perhaps a small will;
// anything announcing more is not a client of ours, and is refused before mochi allocates
// the announced length (which it would, up to maxPacketSize, for every slow connection).
const maxConnectSize = 16 << 10

const refuseConnectTooLarge = "connect_too_large"

// firstPacketListener wraps each accepted connection (after TLS, if any) so that the first
// packet's fixed header is checked as it is read.
type firstPacketListener struct {
	net.Listener
	guard *connGuard
}

func (l *firstPacketListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &firstPacketConn{Conn: c, guard: l.guard}, nil
}

// firstPacketConn reads the first fixed header (type byte, then the 1-4 byte remaining
// length) as it passes and fails the connection if it is not a CONNECT of a sane size; it
// then keeps the CONNECT's bytes (at most maxConnectSize) until it is whole, to count a
// client id mochi's decoder refuses before our hooks run (connectid.go).
type firstPacketConn struct {
	net.Conn
	guard  *connGuard
	header []byte // the first packet's header bytes seen so far
	want   int    // the whole first packet's length, once its header was acceptable
	first  []byte // the first packet's bytes seen so far (header included), once want is known
	done   bool   // the first packet has passed (or was not a CONNECT)
}

func (c *firstPacketConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.done || n == 0 {
		return n, err
	}
	rest := p[:n]
	for c.want == 0 && len(rest) > 0 {
		b := rest[0]
		rest = rest[1:]
		c.header = append(c.header, b)
		if len(c.header) == 1 {
			if b>>4 != 1 { // not CONNECT: mochi refuses it too, without our count
				c.done = true
				return n, err
			}
			continue
		}
		if b&0x80 != 0 && len(c.header) < 5 {
			continue
		}
		if remainingLength(c.header[1:]) > maxConnectSize {
			c.done = true
			c.guard.stats.refusedConnection(refuseConnectTooLarge)
			c.guard.log.Warn("connection refused", "event", "connection_refused",
				"reason", refuseConnectTooLarge, "remote", remoteIP(c.Conn))
			_ = c.Conn.Close()
			return 0, net.ErrClosed
		}
		c.want = len(c.header) + remainingLength(c.header[1:])
		c.first = append([]byte(nil), c.header...)
	}
	if c.want > 0 {
		c.first = append(c.first, rest[:min(len(rest), c.want-len(c.first))]...)
		if len(c.first) == c.want {
			c.done = true
			c.checkClientID()
		}
	}
	return n, err
}

// checkClientID counts a CONNECT whose client id mochi's decoder will refuse.
func (c *firstPacketConn) checkClientID() {
	id, ok := connectClientID(c.first)
	c.first = nil
	if !ok || decodableString(id) {
		return
	}
	c.guard.stats.rejectedConnect(rejectClientIDChars)
	c.guard.log.Warn("connect rejected", "event", "connect_rejected",
		"reason", rejectClientIDChars, "client", short(string(id)), "remote", remoteIP(c.Conn))
}

// remainingLength decodes MQTT's variable-length integer (a malformed fifth byte counts as
// too large).
func remainingLength(b []byte) int {
	v, mul := 0, 1
	for i, x := range b {
		if i == 4 {
			return 1 << 30
		}
		v += int(x&0x7f) * mul
		mul *= 128
		if x&0x80 == 0 {
			return v
		}
	}
	return v
}
