package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

const deviceID = "GID_test@@@a0_85_e3_f4_49_34@@@5f0c3a1e-0d7b-4c4e-9d55-2f1a6b0c9e11"

func lifecycleReason(t *testing.T, m *paho.Publish) string {
	t.Helper()
	var body struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(m.Payload, &body); err != nil {
		t.Fatalf("lifecycle payload %q: %v", m.Payload, err)
	}
	return body.Reason
}

// Rules 1 and 2.
func TestDevicePublishBecomesIngestWithIdenticalBytes(t *testing.T) {
	b := startBroker(t, "")
	s := newSpy(t, b)
	gw := connectGateway(t, b, "gw-1", nil)
	gw.subscribe(t, "ingest/+")
	dev := connectDevice(t, b, deviceID)

	payload := []byte("{\"type\":\"hello\",\"x\":\"\u00e9\"}\x00\xff raw bytes")
	dev.publish(t, topicDeviceServer, payload, 0, false)
	got := gw.expect(t, "ingest/"+deviceID)
	if !bytes.Equal(got.Payload, payload) {
		t.Fatalf("ingest payload = %q, want %q", got.Payload, payload)
	}
	if got.QoS != 0 || got.Retain {
		t.Fatalf("ingest qos=%d retain=%v, want 0/false", got.QoS, got.Retain)
	}

	// A QoS 1 original is acknowledged normally and routed the same way.
	dev.publish(t, topicDeviceServer, []byte("second"), 1, false)
	if ack := dev.next(t, packets.Puback); ack.PacketID != 7 {
		t.Fatalf("PUBACK for packet %d, want 7", ack.PacketID)
	}
	gw.expect(t, "ingest/"+deviceID)

	// The broker handles a client's packets in order, so by the time it has routed the
	// second message, it would have routed the original of the first one.
	s.waitTopic(t, "ingest/"+deviceID)
	s.waitTopic(t, "ingest/"+deviceID)
	if s.routed(topicDeviceServer) {
		t.Fatal("the original device-server message was routed")
	}
	if n := b.Stats().IngestRepublished; n != 2 {
		t.Fatalf("ingest counter = %d, want 2", n)
	}
}

// Rule 3.
func TestDeviceReceivesP2PWithoutSubscribing(t *testing.T) {
	b := startBroker(t, "")
	gw := connectGateway(t, b, "gw-1", nil)
	dev := connectDevice(t, b, deviceID)
	const otherID = "GID_test@@@a0_85_e3_f4_49_35@@@other"
	other := connectDevice(t, b, otherID)

	gw.publish(t, "devices/p2p/"+deviceID, []byte(`{"type":"hello"}`), 0, false)
	got := dev.expect(t, "devices/p2p/"+deviceID)
	if string(got.Payload) != `{"type":"hello"}` {
		t.Fatalf("payload = %q", got.Payload)
	}
	// The other device's first message must be its own: had it been sent the first one,
	// that would have been queued ahead of this.
	gw.publish(t, "devices/p2p/"+otherID, []byte("for-other"), 0, false)
	if got := other.expect(t, "devices/p2p/"+otherID); string(got.Payload) != "for-other" {
		t.Fatalf("payload = %q", got.Payload)
	}
}

// Rule 4: a DISCONNECT packet is "normal", a dropped connection is "closed".
func TestDisconnectAnnouncedNormalAndClosed(t *testing.T) {
	b := startBroker(t, "")
	gw := connectGateway(t, b, "gw-1", nil)
	gw.subscribe(t, "lifecycle/disconnected/+")

	dev := connectDevice(t, b, deviceID)
	dev.disconnect(t)
	if r := lifecycleReason(t, gw.expect(t, "lifecycle/disconnected/"+deviceID)); r != "normal" {
		t.Fatalf("reason = %q, want normal", r)
	}

	dev = connectDevice(t, b, deviceID)
	_ = dev.conn.Close()
	if r := lifecycleReason(t, gw.expect(t, "lifecycle/disconnected/"+deviceID)); r != "closed" {
		t.Fatalf("reason = %q, want closed", r)
	}

	// Gateways are not announced.
	other := connectGateway(t, b, "gw-2", nil)
	_ = other.Disconnect(&paho.Disconnect{})
	gw.expectNone(t)
}

// Rules 4 and 11: a second connection with the same client id takes the first over.
func TestTakeoverAnnouncedAndNewConnectionKeepsWorking(t *testing.T) {
	b := startBroker(t, "")
	gw := connectGateway(t, b, "gw-1", nil)
	gw.subscribe(t, "lifecycle/#", "ingest/+")

	first := connectDevice(t, b, deviceID)
	second := connectDevice(t, b, deviceID)
	first.expectClosed(t)
	if r := lifecycleReason(t, gw.expect(t, "lifecycle/disconnected/"+deviceID)); r != "takenover" {
		t.Fatalf("reason = %q, want takenover", r)
	}

	// The new connection still has its reply subscription and its messages still flow.
	gw.publish(t, "devices/p2p/"+deviceID, []byte("to-second"), 0, false)
	if got := second.expect(t, "devices/p2p/"+deviceID); string(got.Payload) != "to-second" {
		t.Fatalf("payload = %q", got.Payload)
	}
	second.publish(t, topicDeviceServer, []byte("from-second"), 0, false)
	if got := gw.expect(t, "ingest/"+deviceID); string(got.Payload) != "from-second" {
		t.Fatalf("payload = %q", got.Payload)
	}

	second.disconnect(t)
	if r := lifecycleReason(t, gw.expect(t, "lifecycle/disconnected/"+deviceID)); r != "normal" {
		t.Fatalf("reason = %q, want normal", r)
	}
}

// An MQTT 5 device that is taken over is told so with a DISCONNECT 0x8E.
func TestTakeoverSendsV5Disconnect(t *testing.T) {
	b := startBroker(t, "")
	first, _, err := dialV5(t, b.addr, deviceID, v5Options{username: "device"})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if _, _, err := dialV5(t, b.addr, deviceID, v5Options{username: "device"}); err != nil {
		t.Fatalf("second connect: %v", err)
	}
	select {
	case d := <-first.disc:
		if d.ReasonCode != packets.ErrSessionTakenOver.Code {
			t.Fatalf("DISCONNECT reason 0x%02x, want 0x8e", d.ReasonCode)
		}
	case <-time.After(waitFor):
		t.Fatal("first connection got no DISCONNECT")
	}
}

// Rule 5: each device message goes to exactly one member of the share group, and all
// messages of one device to the same member.
func TestSharedSubscriptionDeliversEachMessageOnce(t *testing.T) {
	b := startBroker(t, "")
	gws := []*v5Client{connectGateway(t, b, "gw-a", nil), connectGateway(t, b, "gw-b", nil)}
	for _, gw := range gws {
		if ack := gw.subscribe(t, "$share/gateway/ingest/+", "gateway/done"); ack.Reasons[0] >= 0x80 {
			t.Fatalf("shared subscribe refused: 0x%02x", ack.Reasons[0])
		}
	}
	dev := connectDevice(t, b, deviceID)

	const n = 40
	for i := range n {
		dev.publish(t, topicDeviceServer, fmt.Appendf(nil, "m%d", i), 0, false)
	}
	seen := map[string]int{}
	perGateway := make([]int, len(gws))
	deadline := time.After(waitFor)
	for len(seen) < n {
		select {
		case m := <-gws[0].msgs:
			seen[string(m.Payload)]++
			perGateway[0]++
		case m := <-gws[1].msgs:
			seen[string(m.Payload)]++
			perGateway[1]++
		case <-deadline:
			t.Fatalf("got %d of %d messages", len(seen), n)
		}
	}
	// Any duplicate was queued together with its first copy, so it would arrive before
	// this marker, published only now.
	connectGateway(t, b, "gw-marker", nil).publish(t, "gateway/done", []byte("x"), 0, false)
	for i, gw := range gws {
		for done := false; !done; {
			select {
			case m := <-gw.msgs:
				if m.Topic == "gateway/done" {
					done = true
					continue
				}
				seen[string(m.Payload)]++
				perGateway[i]++
			case <-time.After(waitFor):
				t.Fatalf("gateway %d got no marker", i)
			}
		}
	}
	for p, c := range seen {
		if c != 1 {
			t.Fatalf("message %s delivered %d times", p, c)
		}
	}
	// hash_topic: one device's messages all reach the same member (shared_test.go checks
	// that different devices spread over the members).
	if perGateway[0] != 0 && perGateway[1] != 0 {
		t.Fatalf("one device's messages split over both gateways: %v", perGateway)
	}
}

// Gateway presence: retained, and cleared by the will when the gateway dies.
func TestRetainedPresenceClearedByWillOnAbruptDisconnect(t *testing.T) {
	b := startBroker(t, "")
	const presence = "gateway/presence/gw-1"
	gw1 := connectGateway(t, b, "gw-1", &paho.WillMessage{Topic: presence, Retain: true})
	const up = `{"bootId":"b1","state":"up","udpPort":8884}`
	gw1.publish(t, presence, []byte(up), 1, true)

	gw2 := connectGateway(t, b, "gw-2", nil)
	gw2.subscribe(t, "gateway/#")
	// mochi may hand a subscriber racing the publish both a live copy (retain=false) and
	// the retained one, in either order (about 1 run in 30). Presence is idempotent for
	// the gateways, so copies of the same "up" are tolerated; the retained one must come.
	retained := false
	var got *paho.Publish
	for range 2 {
		got = gw2.expect(t, presence)
		if string(got.Payload) != up {
			t.Fatalf("presence payload = %q, want %q", got.Payload, up)
		}
		if got.Retain {
			retained = true
			break
		}
	}
	if !retained {
		t.Fatalf("the presence never arrived as retained")
	}

	_ = gw1.conn.Close() // no DISCONNECT: the will fires
	got = gw2.expect(t, presence)
	for string(got.Payload) == up { // a late copy of the same "up"
		got = gw2.expect(t, presence)
	}
	if len(got.Payload) != 0 {
		t.Fatalf("will payload = %q, want empty", got.Payload)
	}
	if kept := b.srv.Topics.Messages(presence); len(kept) != 0 {
		t.Fatalf("presence still retained: %q", kept[0].Payload)
	}
}

// Rapid takeovers: each newest connection must stay registered and subscribed, which
// depends on how the old connection's cleanup interleaves with the takeover.
func TestRepeatedTakeoverKeepsNewestConnectionRouted(t *testing.T) {
	b := startBroker(t, "")
	gw := connectGateway(t, b, "gw-1", nil)
	gw.subscribe(t, "lifecycle/#")
	prev := connectDevice(t, b, deviceID)
	for i := range 30 {
		next := connectDevice(t, b, deviceID)
		prev.expectClosed(t)
		if r := lifecycleReason(t, gw.expect(t, "lifecycle/disconnected/"+deviceID)); r != "takenover" {
			t.Fatalf("round %d: reason = %q, want takenover", i, r)
		}
		payload := fmt.Appendf(nil, "round-%d", i)
		gw.publish(t, "devices/p2p/"+deviceID, payload, 0, false)
		if got := next.expect(t, "devices/p2p/"+deviceID); !bytes.Equal(got.Payload, payload) {
			t.Fatalf("round %d: payload %q", i, got.Payload)
		}
		prev = next
	}
}

// Rule 5 when a gateway dies: its peers act on its will at once (each tells the dead
// gateway's devices goodbye, and they say hello again), so from the moment the will goes
// out the dead gateway must receive nothing of the shared stream. mochi publishes the will
// before it takes the client out of its groups; a hello hashed to it in that window was
// lost, and its device waited 10 s to retry. The message here is published from inside
// the will's own delivery, the earliest any peer could react.
func TestDeadGatewayGetsNoSharedMessageOnceItsWillIsOut(t *testing.T) {
	b := startBroker(t, "")
	const presence = "gateway/presence/gw-1"
	gw1 := connectGateway(t, b, "gw-1", &paho.WillMessage{Topic: presence, Retain: true})
	gw2 := connectGateway(t, b, "gw-2", nil)
	for _, gw := range []*v5Client{gw1, gw2} {
		gw.subscribe(t, "$share/gateway/ingest/+")
	}
	// A device whose messages hash to gw-1 ("gw-1" sorts first of the two members).
	var topic string
	for i := 0; topic == ""; i++ {
		if cand := fmt.Sprintf("%sdevice-%d", prefixIngest, i); topicHash(cand)%2 == 0 {
			topic = cand
		}
	}
	if err := b.srv.Publish(topic, []byte("before"), false, 0); err != nil {
		t.Fatalf("publish: %v", err)
	}
	gw1.expect(t, topic)

	published := make(chan error, 1)
	err := b.srv.Subscribe(presence, 7, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		if len(pk.Payload) == 0 { // the will (it clears the retained presence)
			published <- b.srv.Publish(topic, []byte("hello after the will"), false, 0)
		}
	})
	if err != nil {
		t.Fatalf("inline subscribe: %v", err)
	}
	_ = gw1.conn.Close() // no DISCONNECT: the will fires
	select {
	case err := <-published:
		if err != nil {
			t.Fatalf("publish during the will: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatalf("no will within %v", waitFor)
	}
	if got := gw2.expect(t, topic); string(got.Payload) != "hello after the will" {
		t.Fatalf("gw-2 got %q", got.Payload)
	}
}
