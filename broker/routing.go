package main

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// OnPublish re-checks the ACL on the resolved topic and the retain flag (OnACLCheck sees
// neither), and routes device messages (rules 1 and 2): a device's publish to
// device-server is re-published, byte for byte, to ingest/<clientid> at QoS 0 without
// retain, and the original is routed to nobody.
func (h *contractHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the broker's own publishes (ingest/, lifecycle/)
	}
	if isGateway(cl) {
		if !gatewayMayPublish(pk.TopicName) {
			return pk, h.refusePublish(cl, pk, "publish")
		}
		if pk.FixedHeader.Retain && !gatewayMayRetain(pk.TopicName) {
			return pk, h.refusePublish(cl, pk, "retain")
		}
		return pk, nil
	}

	if !deviceMayPublish(pk.TopicName) {
		return pk, h.refusePublish(cl, pk, "publish")
	}
	if pk.FixedHeader.Retain {
		return pk, h.refusePublish(cl, pk, "retain")
	}
	h.stats.ingest.Add(1) // counted first: subscribers may see the message before Publish returns
	h.log.Debug("ingest", "event", "ingest", "client", cl.ID, "bytes", len(pk.Payload))
	if err := h.srv.Publish(prefixIngest+cl.ID, pk.Payload, false, 0); err != nil {
		h.log.Error("ingest republish failed", "event", "ingest_failed", "client", cl.ID, "error", err.Error())
	}
	// CodeSuccessIgnore: mochi still acknowledges a QoS 1/2 original normally, but
	// neither retains it nor routes it to any subscriber.
	return pk, packets.CodeSuccessIgnore
}

// refusePublish drops a publish the ACL refuses, the way mochi drops one refused by
// OnACLCheck: silently for QoS 0, with a "not authorized" PUBACK for an MQTT 5 QoS 1/2,
// and by disconnecting an MQTT 3 client that used QoS 1/2 (it has no negative ack).
func (h *contractHook) refusePublish(cl *mqtt.Client, pk packets.Packet, action string) error {
	h.denied(cl, action, pk.TopicName)
	if pk.FixedHeader.Qos == 0 {
		return packets.ErrRejectPacket
	}
	if cl.Properties.ProtocolVersion == 5 {
		return packets.ErrNotAuthorized
	}
	_ = h.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	return packets.ErrRejectPacket
}

// OnWill marks a gateway whose will is going out as departing (shared.go passes it over
// from now on), and re-routes a device's will (only one on device-server survives
// checkWill) to ingest/<clientid>, as rule 1 would have routed the same message published
// normally.
func (h *contractHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if isGateway(cl) {
		// Its peers will act on this will at once: it must receive nothing from now on.
		h.departing.Store(cl, struct{}{})
		return will, nil
	}
	if will.TopicName != topicDeviceServer {
		return will, nil
	}
	will.TopicName = prefixIngest + cl.ID
	will.Retain = false
	will.Qos = 0
	h.stats.ingest.Add(1)
	return will, nil
}

// subscribeReplyTopic subscribes a device to devices/p2p/<clientid> at QoS 0 (rule 3), the
// same way mochi handles a SUBSCRIBE packet. It runs from OnPacketEncode, as the successful
// CONNACK is about to be written, rather than from OnSessionEstablished:
//   - it must run after mochi has resolved a takeover of the client id, because the
//     takeover removes the old connection's subscriptions, which are keyed by client id
//     and so are this one's (OnSessionEstablish is too early);
//   - OnSessionEstablished only runs after the CONNACK has been sent, so a client that
//     acts on the CONNACK (a test harness: connect a device, then publish to it) could
//     race the subscription.
func (h *contractHook) subscribeReplyTopic(cl *mqtt.Client) {
	sub := packets.Subscription{Filter: prefixP2P + cl.ID, Qos: 0}
	if h.srv.Topics.Subscribe(cl.ID, sub) {
		atomic.AddInt64(&h.srv.Info.Subscriptions, 1)
	}
	cl.State.Subscriptions.Add(sub.Filter, sub)
}

// OnDisconnect announces a device's disconnect to the gateways (rule 4).
func (h *contractHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	// Stopped by now (cl.Closed()), so the shared groups pass it over without this entry.
	h.departing.Delete(cl)
	reason := disconnectReason(cl, err)
	if reason == "takenover" {
		waitTakenOver(cl)
	}
	h.log.Info("client disconnected",
		"event", "disconnected",
		"client", cl.ID,
		"kind", kindOf(cl),
		"reason", reason)
	if isGateway(cl) {
		return
	}
	payload, _ := json.Marshal(struct {
		Reason string `json:"reason"`
	}{reason})
	if perr := h.srv.Publish(prefixDisconnected+cl.ID, payload, false, 0); perr != nil {
		h.log.Error("lifecycle publish failed", "event", "lifecycle_failed", "client", cl.ID, "error", perr.Error())
	}
}

// waitTakenOver waits (briefly) until mochi has marked a replaced client as taken over.
// mochi closes the old connection first and sets the mark just after. If the old client's
// goroutine got past OnDisconnect before that, its cleanup (unsubscribe, then delete from
// the client list, both by client id) could hit the NEW connection with the same id.
func waitTakenOver(cl *mqtt.Client) {
	deadline := time.Now().Add(time.Second)
	for !cl.IsTakenOver() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// disconnectReason names why a connection ended, in one short word: "takenover" when a
// newer connection with the same client id replaced it, "normal" after a DISCONNECT
// packet, otherwise a word from the error.
func disconnectReason(cl *mqtt.Client, err error) string {
	cause := cl.StopCause() // the server's reason, when the server closed the connection
	if cause == nil {
		cause = err
	}
	var code packets.Code
	switch {
	case errors.Is(cause, packets.ErrSessionTakenOver):
		return "takenover"
	case cause == nil,
		errors.Is(cause, packets.CodeDisconnect),
		errors.Is(cause, packets.CodeDisconnectWillMessage):
		return "normal"
	case errors.Is(cause, os.ErrDeadlineExceeded):
		return "keepalive_timeout"
	case errors.Is(cause, io.EOF),
		errors.Is(cause, io.ErrUnexpectedEOF),
		errors.Is(cause, net.ErrClosed),
		errors.Is(cause, syscall.ECONNRESET),
		errors.Is(cause, syscall.EPIPE),
		errors.Is(cause, mqtt.ErrConnectionClosed):
		return "closed"
	case errors.As(cause, &code):
		return strings.ReplaceAll(strings.ToLower(code.Reason), " ", "_")
	}
	return "error"
}
