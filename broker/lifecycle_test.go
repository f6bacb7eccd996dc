package main

import (
	"encoding/json"
	"testing"
	"time"
)

// Rule 4 for a gateway whose own connection was down when a device's connection was taken
// over: the event is retained, with the time it happened, so the gateway hears it when it
// subscribes again. It used to be published without retain: such a gateway never heard of
// it, and its session of the old connection idled on until its idle timeout.
func TestLifecycleEventReachesAGatewayThatSubscribesLater(t *testing.T) {
	b := startBroker(t, "")
	start := time.Now().UnixMilli()
	first := connectDevice(t, b, deviceID)
	connectDevice(t, b, deviceID)
	first.expectClosed(t)

	late := connectGateway(t, b, "gw-late", nil)
	late.subscribe(t, "lifecycle/#")
	m := late.expect(t, "lifecycle/disconnected/"+deviceID)
	end := time.Now().UnixMilli()
	if !m.Retain {
		t.Fatal("the event reached a later subscriber without the retain flag")
	}
	var body struct {
		Reason string `json:"reason"`
		At     int64  `json:"at"`
	}
	if err := json.Unmarshal(m.Payload, &body); err != nil {
		t.Fatalf("payload %q: %v", m.Payload, err)
	}
	if body.Reason != "takenover" || body.At < start || body.At > end {
		t.Fatalf("event %+v, want takenover between %d and %d", body, start, end)
	}
}

// The retained event expires (after the gateways' idle timeout in production), so the
// broker holds at most the devices that disconnected in that window.
func TestLifecycleEventExpires(t *testing.T) {
	b := startBroker(t, "")
	b.hook.lifecycleRetain = 1
	dev := connectDevice(t, b, deviceID)
	dev.disconnect(t)
	watch := connectGateway(t, b, "gw-1", nil)
	watch.subscribe(t, "lifecycle/#")
	watch.expect(t, "lifecycle/disconnected/"+deviceID)

	// mochi sweeps expired retained messages once a second, in whole seconds.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, held := b.srv.Topics.Retained.Get("lifecycle/disconnected/" + deviceID); !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the retained lifecycle event never expired")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
