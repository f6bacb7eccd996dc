package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// maxPacketSize is the per-packet cap of contract rule 12.
const maxPacketSize = 65536

// Config is everything the broker needs; main fills it from flags and the environment.
type Config struct {
	Addr             string       // listen address, e.g. 127.0.0.1:1883 (port 0 picks a free one)
	GatewayPassword  string       // password of the `gateway` user (required)
	DeviceSigningKey string       // HMAC key for device passwords; empty disables device auth
	Logger           *slog.Logger // where every event goes (rate-limited per kind of line)
	// TLSAddr, with TLSCertFile and TLSKeyFile (PEM), adds an MQTT-over-TLS listener (the
	// production port is 8883); empty: plain TCP only.
	TLSAddr     string
	TLSCertFile string
	TLSKeyFile  string
	Limits      Limits // connection limits (guard.go); zero fields take DefaultLimits
}

// Log lines of one kind (message and event) passed at once, and per second after that.
const (
	logBurst     = 20
	logPerSecond = 5
)

// Broker is the mochi server wired with the contract's hook.
type Broker struct {
	srv   *mqtt.Server
	hook  *contractHook
	cfg   Config
	guard *connGuard
	log   *slog.Logger
	stats *Counters
	tls   *tls.Config // nil without a TLS listener
	bound []string    // addresses bound by Start: plain TCP, then TLS if any
	inner []net.Listener
}

// New builds a broker; nothing listens until Start.
func New(cfg Config) (*Broker, error) {
	if cfg.GatewayPassword == "" {
		return nil, errors.New("gateway password is required")
	}
	if (cfg.TLSAddr == "") != (cfg.TLSCertFile == "" || cfg.TLSKeyFile == "") {
		return nil, errors.New("a TLS listener needs its address, certificate and key together")
	}
	base := cfg.Logger
	if base == nil {
		base = slog.Default()
	}
	log := slog.New(newRateLimitedHandler(base.Handler(), logPerSecond, logBurst, time.Now))
	var tlsConfig *tls.Config
	if cfg.TLSAddr != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = maxPacketSize
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       log,
		InlineClient: true, // the broker publishes ingest/ and lifecycle/ messages itself
		// Nobody may subscribe to $SYS (ACL), so there is no point refreshing it every second.
		SysTopicResendInterval: 60,
	})

	stats := newCounters()
	h := &contractHook{
		srv:             srv,
		log:             log,
		stats:           stats,
		gatewayPassword: []byte(cfg.GatewayPassword),
	}
	if cfg.DeviceSigningKey != "" {
		h.deviceKey = []byte(cfg.DeviceSigningKey)
	}
	if err := srv.AddHook(h, nil); err != nil {
		return nil, err
	}

	b := &Broker{
		srv:   srv,
		hook:  h,
		cfg:   cfg,
		guard: newConnGuard(cfg.Limits, log, stats),
		log:   log,
		stats: stats,
		tls:   tlsConfig,
	}
	return b, nil
}

// Start binds the listeners and starts serving. It returns the plain TCP address actually
// bound (TLSAddress gives the TLS one).
func (b *Broker) Start() (string, error) {
	if b.hook.deviceKey == nil {
		b.log.Warn("device authentication disabled: local development only",
			"hint", "set --device-signing-key / BROKER_DEVICE_SIGNING_KEY")
	}
	if err := b.listen("tcp", b.cfg.Addr, nil); err != nil {
		return "", err
	}
	if b.tls != nil {
		if err := b.listen("tls", b.cfg.TLSAddr, b.tls); err != nil {
			return "", err
		}
	}
	if err := b.srv.Serve(); err != nil {
		return "", err
	}
	return b.bound[0], nil
}

// TLSAddress is the TLS listener's bound address ("" without one).
func (b *Broker) TLSAddress() string {
	if len(b.bound) < 2 {
		return ""
	}
	return b.bound[1]
}

// listen binds one listener behind the connection guard; TLS is layered over the guard, so
// the CONNECT deadline covers the handshake too.
func (b *Broker) listen(id, addr string, tlsConfig *tls.Config) error {
	inner, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var l net.Listener = &guardedListener{Listener: inner, guard: b.guard, id: id}
	if tlsConfig != nil {
		l = tls.NewListener(l, tlsConfig)
	}
	l = &firstPacketListener{Listener: l, guard: b.guard}
	if err := b.srv.AddListener(listeners.NewNet(id, l)); err != nil {
		_ = inner.Close()
		return err
	}
	b.bound = append(b.bound, inner.Addr().String())
	b.inner = append(b.inner, inner)
	return nil
}

// Close stops taking connections, disconnects every client and waits (briefly) for their
// disconnect hooks to finish, so that the counters are final, then stops the server.
//
// The clients go first, by us, not by mochi's own shutdown: in v2.7.9 that reads the client
// list under a read lock it takes twice (Clients.GetByListener calls Len), and a client
// removed at that moment (a connection ending on its own) queues a writer between the two,
// which deadlocks Close for good (seen once in the broker tests: a test's cleanup hung for
// their 10 min bound). With the listeners closed and every connection over, nothing is
// removed while it reads.
func (b *Broker) Close() {
	for _, l := range b.inner {
		_ = l.Close()
	}
	for _, cl := range b.srv.Clients.GetAll() {
		_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
	}
	done := make(chan struct{})
	go func() {
		b.srv.Listeners.ClientsWg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		b.log.Warn("clients still closing at shutdown")
	}
	_ = b.srv.Close()
}

// Stats returns a snapshot of the counters.
func (b *Broker) Stats() Snapshot { return b.stats.snapshot() }

// Counters are the broker's few metrics, logged at shutdown.
type Counters struct {
	ingest    atomic.Int64 // device messages re-published to ingest/<clientid>
	aclDenied atomic.Int64 // publishes, subscribes, deliveries and wills refused by the ACL

	mu       sync.Mutex
	rejected map[string]int64 // refused CONNECTs by reason
	refused  map[string]int64 // connections closed by the guard before CONNECT, by reason
}

// Snapshot is a copy of the counters.
type Snapshot struct {
	IngestRepublished int64            `json:"ingest_republished"`
	ACLDenied         int64            `json:"acl_denied"`
	ConnectsRejected  map[string]int64 `json:"connects_rejected"`
	ConnsRefused      map[string]int64 `json:"connections_refused"`
}

func newCounters() *Counters {
	return &Counters{rejected: map[string]int64{}, refused: map[string]int64{}}
}

func (c *Counters) refusedConnection(reason string) {
	c.mu.Lock()
	c.refused[reason]++
	c.mu.Unlock()
}

func (c *Counters) rejectedConnect(reason string) {
	c.mu.Lock()
	c.rejected[reason]++
	c.mu.Unlock()
}

func (c *Counters) snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Snapshot{
		IngestRepublished: c.ingest.Load(),
		ACLDenied:         c.aclDenied.Load(),
		ConnectsRejected:  maps.Clone(c.rejected),
		ConnsRefused:      maps.Clone(c.refused),
	}
}
