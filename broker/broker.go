package main

import (
	"errors"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// maxPacketSize is the per-packet cap of contract rule 12.
const maxPacketSize = 65536

// Config is everything the broker needs; main fills it from flags and the environment.
type Config struct {
	Addr             string       // listen address, e.g. 127.0.0.1:1883 (port 0 picks a free one)
	GatewayPassword  string       // password of the `gateway` user (required)
	DeviceSigningKey string       // HMAC key for device passwords; empty disables device auth
	Logger           *slog.Logger // where every event goes
}

// Broker is the mochi server wired with the contract's hook.
type Broker struct {
	srv      *mqtt.Server
	hook     *contractHook
	listener *listeners.TCP
	log      *slog.Logger
	stats    *Counters
}

// New builds a broker; nothing listens until Start.
func New(cfg Config) (*Broker, error) {
	if cfg.GatewayPassword == "" {
		return nil, errors.New("gateway password is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
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
		srv:      srv,
		hook:     h,
		listener: listeners.NewTCP(listeners.Config{ID: "tcp", Address: cfg.Addr}),
		log:      log,
		stats:    stats,
	}
	return b, nil
}

// Start binds the listener and starts serving. It returns the address actually bound.
func (b *Broker) Start() (string, error) {
	if b.hook.deviceKey == nil {
		b.log.Warn("device authentication disabled: local development only",
			"hint", "set --device-signing-key / BROKER_DEVICE_SIGNING_KEY")
	}
	if err := b.srv.AddListener(b.listener); err != nil {
		return "", err
	}
	if err := b.srv.Serve(); err != nil {
		return "", err
	}
	return b.listener.Address(), nil
}

// Close stops the listener, disconnects every client and waits (briefly) for their
// disconnect hooks to finish, so that the counters are final.
func (b *Broker) Close() {
	_ = b.srv.Close()
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
}

// Stats returns a snapshot of the counters.
func (b *Broker) Stats() Snapshot { return b.stats.snapshot() }

// Counters are the broker's few metrics, logged at shutdown.
type Counters struct {
	ingest    atomic.Int64 // device messages re-published to ingest/<clientid>
	aclDenied atomic.Int64 // publishes, subscribes, deliveries and wills refused by the ACL

	mu       sync.Mutex
	rejected map[string]int64 // refused CONNECTs by reason
}

// Snapshot is a copy of the counters.
type Snapshot struct {
	IngestRepublished int64            `json:"ingest_republished"`
	ACLDenied         int64            `json:"acl_denied"`
	ConnectsRejected  map[string]int64 `json:"connects_rejected"`
}

func newCounters() *Counters { return &Counters{rejected: map[string]int64{}} }

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
	}
}
