package main

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Rule 8: a device may subscribe only to its own reply topic (MQTT 3.1.1 failure code 0x80).
func TestDeviceSubscriptionsRefused(t *testing.T) {
	b := startBroker(t, "")
	dev := connectDevice(t, b, deviceID)
	for _, filter := range []string{
		"#",
		"$SYS/#",
		"devices/p2p/GID_test@@@a0_85_e3_f4_49_35@@@other",
		"devices/p2p/+",
		"ingest/+",
		"lifecycle/#",
		"gateway/#",
		topicDeviceServer,
		"$share/g/devices/p2p/" + deviceID,
	} {
		if code := dev.subscribe(t, filter); code != 0x80 {
			t.Errorf("device subscribe %q: SUBACK 0x%02x, want 0x80", filter, code)
		}
	}
	// Older firmware subscribes to its own topic itself: allowed.
	if code := dev.subscribe(t, "devices/p2p/"+deviceID); code != 0x00 {
		t.Errorf("own reply topic: SUBACK 0x%02x, want 0x00", code)
	}
}

// The same refusal seen by an MQTT 5 client: "not authorized".
func TestDeviceSubscriptionRefusedV5(t *testing.T) {
	b := startBroker(t, "")
	dev, _, err := dialV5(t, b.addr, deviceID, v5Options{username: "device"})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	ack := dev.subscribe(t, "#", "devices/p2p/"+deviceID)
	if ack.Reasons[0] != packets.ErrNotAuthorized.Code || ack.Reasons[1] != 0x00 {
		t.Fatalf("SUBACK reasons % x, want 87 00", ack.Reasons)
	}
}

// Rule 8: a device publishes only to device-server, never retained.
func TestDevicePublishesElsewhereDropped(t *testing.T) {
	b := startBroker(t, "")
	s := newSpy(t, b)
	dev := connectDevice(t, b, deviceID)
	forbidden := []string{
		"devices/p2p/" + deviceID,
		"devices/p2p/someone-else",
		"ingest/GID_test@@@a0_85_e3_f4_49_35@@@other",
		"lifecycle/disconnected/x",
		"gateway/presence/fake",
		"gateway/claims/x",
		"other",
	}
	for _, topic := range forbidden {
		dev.publish(t, topic, []byte("spoof"), 0, false)
	}
	dev.publish(t, topicDeviceServer, []byte("retained?"), 0, true)
	dev.publish(t, topicDeviceServer, []byte("ok"), 0, false)

	// Packets from one client are handled in order: once the last one is routed, the
	// forbidden ones before it have been dropped or routed.
	s.waitTopic(t, "ingest/"+deviceID)
	for _, topic := range forbidden {
		if s.routed(topic) {
			t.Errorf("device publish to %q was routed", topic)
		}
	}
	// The device's own ingest topic carries only the broker's re-publish, not a spoof.
	dev.publish(t, "ingest/"+deviceID, []byte("spoof"), 0, false)
	dev.publish(t, topicDeviceServer, []byte("ok"), 0, false)
	s.waitTopic(t, "ingest/"+deviceID)
	if n := s.count("ingest/" + deviceID); n != 2 {
		t.Errorf("ingest/<own id> routed %d times, want 2", n)
	}
	if kept := b.srv.Topics.Messages(topicDeviceServer); len(kept) != 0 {
		t.Error("a device retained a message")
	}
	if n := b.Stats().IngestRepublished; n != 2 {
		t.Errorf("ingest counter = %d, want 2 (the retained publish must not count)", n)
	}
	if n := b.Stats().ACLDenied; n != int64(len(forbidden)+2) {
		t.Errorf("acl denied counter = %d, want %d", n, len(forbidden)+2)
	}
}

// Rule 9: what a gateway may subscribe to.
func TestGatewaySubscriptions(t *testing.T) {
	b := startBroker(t, "")
	gw := connectGateway(t, b, "gw-1", nil)
	allowed := []string{
		"ingest/+",
		"$share/gateway/ingest/+",
		"ingest/" + deviceID,
		"lifecycle/#",
		"lifecycle/disconnected/+",
		"$share/gateway/lifecycle/#",
		"gateway/#",
		"gateway/presence/+",
		"gateway/forward/gw-1",
	}
	refused := []string{
		"#",
		"+/+",
		"$SYS/#",
		topicDeviceServer,
		"devices/p2p/+",
		"ingest/#",
		"$share/gateway/#",
		"other/#",
	}
	ack := gw.subscribe(t, append(append([]string{}, allowed...), refused...)...)
	for i, f := range allowed {
		if ack.Reasons[i] != 0x00 {
			t.Errorf("gateway subscribe %q: 0x%02x, want 0x00", f, ack.Reasons[i])
		}
	}
	for i, f := range refused {
		if code := ack.Reasons[len(allowed)+i]; code != packets.ErrNotAuthorized.Code {
			t.Errorf("gateway subscribe %q: 0x%02x, want 0x87", f, code)
		}
	}
}

// Rule 9: what a gateway may publish, and retain only presence.
func TestGatewayPublishes(t *testing.T) {
	b := startBroker(t, "")
	s := newSpy(t, b)
	gw := connectGateway(t, b, "gw-1", nil)

	// Refused at QoS 0: silently dropped. Spoofing device traffic is the point here.
	for _, topic := range []string{topicDeviceServer, "ingest/" + deviceID, "lifecycle/disconnected/x", "other"} {
		gw.publish(t, topic, []byte("spoof"), 0, false)
	}
	gw.publish(t, "gateway/claims/c1", []byte("retained?"), 0, true) // retain outside presence
	gw.publish(t, "devices/p2p/"+deviceID, []byte("reply"), 0, false)
	gw.publish(t, "gateway/forward/gw-2", []byte("fwd"), 0, false)
	gw.publish(t, "gateway/presence/gw-1", []byte("up"), 0, true)
	s.waitTopic(t, "gateway/presence/gw-1")

	for _, topic := range []string{topicDeviceServer, "ingest/" + deviceID, "lifecycle/disconnected/x", "other", "gateway/claims/c1"} {
		if s.routed(topic) {
			t.Errorf("gateway publish to %q was routed", topic)
		}
	}
	for _, topic := range []string{"devices/p2p/" + deviceID, "gateway/forward/gw-2"} {
		if !s.routed(topic) {
			t.Errorf("gateway publish to %q was not routed", topic)
		}
	}
	if len(b.srv.Topics.Messages("gateway/claims/c1")) != 0 {
		t.Error("a claim was retained")
	}
	if len(b.srv.Topics.Messages("gateway/presence/gw-1")) != 1 {
		t.Error("presence was not retained")
	}
}
