package main

import (
	"bytes"
	"crypto/rand"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochi refuses a CONNECT whose will has an empty payload ("protocol violation: will flag
// no payload"), although MQTT allows it and the gateways depend on it: their will clears
// their retained presence. OnPacketRead, which runs before mochi validates the CONNECT,
// puts a placeholder in an empty will payload, and OnConnect (via restoreEmptyWill), which
// runs after, empties it again. The placeholder is random per process, so no client can
// send it on purpose.
var emptyWillPlaceholder = func() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}()

func (h *contractHook) OnPacketRead(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Connect && pk.Connect.WillFlag && len(pk.Connect.WillPayload) == 0 {
		pk.Connect.WillPayload = emptyWillPlaceholder
	}
	return pk, nil
}

func (h *contractHook) restoreEmptyWill(cl *mqtt.Client) {
	if cl.Properties.Will.Flag != 0 && bytes.Equal(cl.Properties.Will.Payload, emptyWillPlaceholder) {
		cl.Properties.Will.Payload = []byte{}
	}
}
