package main

import (
	"bytes"
	"log/slog"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// gatewayUsername is the one username that identifies a gateway (contract rule 7).
const gatewayUsername = "gateway"

// contractHook implements docs/broker-contract.md on top of mochi: authentication (auth.go),
// the ACL (acl.go) and the message routing (routing.go).
type contractHook struct {
	mqtt.HookBase

	srv             *mqtt.Server
	log             *slog.Logger
	stats           *Counters
	gatewayPassword []byte
	deviceKey       []byte // nil: devices are not authenticated (local development)
	shared          hashTopic
	// departing holds each gateway client (*mqtt.Client) from its will until its
	// disconnect is handled; shared.go passes it over (connectedMember).
	departing sync.Map
}

func (h *contractHook) ID() string { return "voicefleet-contract" }

func (h *contractHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnect,
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnPublish,
		mqtt.OnDisconnect,
		mqtt.OnWill,
		mqtt.OnPacketEncode,
		mqtt.OnPacketRead,
		mqtt.OnSelectSubscribers,
	}, []byte{b})
}

// isGateway reports whether a connected client is a gateway. Only clients that passed
// OnConnect are ever connected, and a client with the gateway username can only pass
// it with the gateway password.
func isGateway(cl *mqtt.Client) bool {
	return string(cl.Properties.Username) == gatewayUsername
}

func kindOf(cl *mqtt.Client) string {
	if isGateway(cl) {
		return "gateway"
	}
	return "device"
}

// OnPacketEncode acts on the CONNACK just before it is written: it advertises the packet
// size cap (rule 12) to MQTT 5 clients, which mochi enforces but does not announce, and on
// a successful CONNACK it subscribes a device to its reply topic (see subscribeReplyTopic).
func (h *contractHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Connack {
		return pk
	}
	if pk.ProtocolVersion == 5 {
		pk.Properties.MaximumPacketSize = maxPacketSize
	}
	if pk.ReasonCode == packets.CodeSuccess.Code && !isGateway(cl) {
		h.subscribeReplyTopic(cl)
	}
	return pk
}

// short trims untrusted strings (client ids, topics) before they go into a log line.
func short(s string) string {
	const limit = 160
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}
