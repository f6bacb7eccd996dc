package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Rule 12: packets over 64 KiB end the connection; smaller ones pass.
func TestPacketSizeCap(t *testing.T) {
	b := startBroker(t, "")
	gw := connectGateway(t, b, "gw-1", nil)
	gw.subscribe(t, "ingest/+", "lifecycle/#")
	dev := connectDevice(t, b, deviceID)

	big := bytes.Repeat([]byte("a"), 60_000)
	dev.publish(t, topicDeviceServer, big, 0, false)
	if got := gw.expect(t, "ingest/"+deviceID); len(got.Payload) != len(big) {
		t.Fatalf("ingest payload of %d bytes, want %d", len(got.Payload), len(big))
	}

	dev.publish(t, topicDeviceServer, bytes.Repeat([]byte("a"), maxPacketSize), 0, false)
	dev.expectClosed(t)
	if r := lifecycleReason(t, gw.expect(t, "lifecycle/disconnected/"+deviceID)); r != "packet_too_large" {
		t.Fatalf("reason = %q, want packet_too_large", r)
	}
}

// MQTT 3.1.1 has no negative PUBACK: a refused QoS 1 publish ends the connection, as mochi
// does for its own ACL refusals.
func TestDeviceForbiddenQoS1PublishDisconnectsV3(t *testing.T) {
	b := startBroker(t, "")
	s := newSpy(t, b)
	dev := connectDevice(t, b, deviceID)
	dev.publish(t, "devices/p2p/someone-else", []byte("spoof"), 1, false)
	dev.expectClosed(t)
	if s.routed("devices/p2p/someone-else") {
		t.Fatal("refused publish was routed")
	}
}

// A device's will on device-server is routed like its other messages; any other will of a
// device is dropped (mochi itself would publish wills without an ACL check).
func TestDeviceWill(t *testing.T) {
	b := startBroker(t, "")
	gw := connectGateway(t, b, "gw-1", nil)
	gw.subscribe(t, "ingest/+", "lifecycle/#", "gateway/#")

	dev, _, err := dialV5(t, b.addr, deviceID, v5Options{username: "device",
		will: &paho.WillMessage{Topic: topicDeviceServer, Payload: []byte(`{"type":"goodbye"}`)}})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	_ = dev.conn.Close()
	if got := gw.expect(t, "ingest/"+deviceID); string(got.Payload) != `{"type":"goodbye"}` {
		t.Fatalf("will payload %q", got.Payload)
	}
	gw.expect(t, "lifecycle/disconnected/"+deviceID)

	// A spoofing will: the lifecycle event is published after the will would have been,
	// so it arriving first proves the will was dropped.
	dev, _, err = dialV5(t, b.addr, deviceID, v5Options{username: "device",
		will: &paho.WillMessage{Topic: "gateway/presence/fake", Payload: []byte("x"), Retain: true}})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	_ = dev.conn.Close()
	gw.expect(t, "lifecycle/disconnected/"+deviceID)
	if len(b.srv.Topics.Messages("gateway/presence/fake")) != 0 {
		t.Fatal("a device's will was retained")
	}
}

// The words of rule 4's reason, for each way a connection ends.
func TestDisconnectReasonWords(t *testing.T) {
	b := startBroker(t, "")
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, c := range []struct {
		stop, err error
		want      string
	}{
		{packets.ErrSessionTakenOver, nil, "takenover"},
		{packets.CodeDisconnect, nil, "normal"},
		{packets.CodeDisconnectWillMessage, packets.CodeDisconnectWillMessage, "normal"},
		{timeout, timeout, "keepalive_timeout"},
		{io.EOF, io.EOF, "closed"},
		{syscall.ECONNRESET, syscall.ECONNRESET, "closed"},
		{packets.ErrPacketTooLarge, packets.ErrPacketTooLarge, "packet_too_large"},
		{packets.ErrServerShuttingDown, nil, "server_shutting_down"},
		{packets.ErrNotAuthorized, nil, "not_authorized"},
		{errors.New("something odd"), errors.New("something odd"), "error"},
	} {
		cl := b.srv.NewClient(nil, "test", "c", false)
		cl.Stop(c.stop)
		if got := disconnectReason(cl, c.err); got != c.want {
			t.Errorf("stop %v / err %v: %q, want %q", c.stop, c.err, got, c.want)
		}
	}
}
