package main

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

const (
	testGatewayPassword = "gw-secret"
	waitFor             = 3 * time.Second        // how long to wait for an expected event
	quietFor            = 300 * time.Millisecond // how long to wait to be sure nothing arrives
)

// syncBuffer collects the broker's log lines; they are printed when a test fails.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testBroker struct {
	*Broker
	addr string
}

// startBroker runs a broker on a free port for the duration of the test. An empty key
// leaves device authentication off.
func startBroker(t *testing.T, deviceKey string) *testBroker {
	t.Helper()
	logs := &syncBuffer{}
	b, err := New(Config{
		Addr:             "127.0.0.1:0",
		GatewayPassword:  testGatewayPassword,
		DeviceSigningKey: deviceKey,
		Logger:           slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	addr, err := b.Start()
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() {
		b.Close()
		if t.Failed() {
			t.Logf("broker log:\n%s", logs.String())
		}
	})
	return &testBroker{Broker: b, addr: addr}
}

// spy records every topic the broker routes, whoever may or may not receive it: an inline
// subscription to "#" bypasses the ACL, so it would see a device-server message if the
// broker ever routed one.
type spy struct {
	mu     sync.Mutex
	topics []string
	seen   chan string
}

func newSpy(t *testing.T, b *testBroker) *spy {
	t.Helper()
	s := &spy{seen: make(chan string, 256)}
	err := b.srv.Subscribe("#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		s.mu.Lock()
		s.topics = append(s.topics, pk.TopicName)
		s.mu.Unlock()
		s.seen <- pk.TopicName
	})
	if err != nil {
		t.Fatalf("spy subscribe: %v", err)
	}
	return s
}

// waitTopic waits until the broker has routed a message on topic.
func (s *spy) waitTopic(t *testing.T, topic string) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case got := <-s.seen:
			if got == topic {
				return
			}
		case <-deadline:
			t.Fatalf("broker routed nothing on %q within %v", topic, waitFor)
		}
	}
}

func (s *spy) routed(topic string) bool { return s.count(topic) > 0 }

func (s *spy) count(topic string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, got := range s.topics {
		if got == topic {
			n++
		}
	}
	return n
}
