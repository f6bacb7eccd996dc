package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strings"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

const maxClientIDLen = 128 // contract rule 10

// Reasons for refused CONNECTs, as counted and logged.
const (
	rejectBadClientID       = "client_id_not_valid"
	rejectClientIDChars     = "client_id_bad_characters"
	rejectGatewayPassword   = "gateway_bad_password"
	rejectDeviceNotSigned   = "device_not_authorized"
	rejectDeviceBadClientID = "device_client_id_not_signable"
	rejectDeviceBadUsername = "device_username_not_ota"
)

// OnConnect runs every CONNECT check and, on failure, sends the CONNACK with the precise
// reason code itself: mochi's OnConnectAuthenticate can only answer "bad username or
// password", while the contract wants "client identifier not valid" and "not authorized"
// too. Returning an error makes mochi close the connection without a second CONNACK.
func (h *contractHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	code, reason := h.authenticate(pk)
	if code != packets.CodeSuccess {
		h.stats.rejectedConnect(reason)
		h.log.Warn("connect rejected",
			"event", "connect_rejected",
			"reason", reason,
			"client", short(pk.Connect.ClientIdentifier),
			"username", short(string(pk.Connect.Username)),
			"remote", cl.Net.Remote)
		h.refuseConnect(cl, code)
		return code
	}
	// Accepted: the connection leaves the guard's pending count (guard.go); mochi now
	// keeps the keepalive deadline in place of the CONNECT one.
	markEstablished(cl.Net.Conn)
	h.restoreEmptyWill(cl)

	if !isGateway(cl) {
		// Rule 13: devices always get a clean session that ends with the connection, so
		// nothing is kept or queued for an offline device, whatever the device asked for.
		cl.Properties.Clean = true
		cl.Properties.Props.SessionExpiryInterval = 0
		cl.Properties.Props.SessionExpiryIntervalFlag = false
	}
	h.checkWill(cl)

	h.log.Info("client connected",
		"event", "connected",
		"client", cl.ID,
		"kind", kindOf(cl),
		"remote", cl.Net.Remote,
		"protocol", cl.Properties.ProtocolVersion)
	return nil
}

// refuseConnect sends the refusing CONNACK. MQTT 3.1.1 has its own return codes, and
// mochi's translation table lacks "not authorized" and maps "bad username or password"
// to 0x05 rather than 0x04, so v3 clients get a CONNACK built here.
func (h *contractHook) refuseConnect(cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion >= 5 {
		_ = h.srv.SendConnack(cl, code, false, nil)
		return
	}
	v3 := byte(0x05) // not authorized
	switch code {
	case packets.ErrClientIdentifierNotValid:
		v3 = 0x02 // identifier rejected
	case packets.ErrBadUsernameOrPassword:
		v3 = 0x04 // bad user name or password
	}
	_ = cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connack},
		ReasonCode:  v3,
	})
}

// OnConnectAuthenticate repeats the decision OnConnect already made (OnConnect has refused
// every client this would refuse), so mochi's own authentication gate agrees with it.
func (h *contractHook) OnConnectAuthenticate(_ *mqtt.Client, pk packets.Packet) bool {
	code, _ := h.authenticate(pk)
	return code == packets.CodeSuccess
}

// authenticate applies rules 7 and 10 and the device-auth rule to a CONNECT packet.
func (h *contractHook) authenticate(pk packets.Packet) (packets.Code, string) {
	id := pk.Connect.ClientIdentifier
	if !validClientID(id) {
		return packets.ErrClientIdentifierNotValid, rejectBadClientID
	}
	if hasRefusedCharacter(id) {
		return packets.ErrClientIdentifierNotValid, rejectClientIDChars
	}

	if string(pk.Connect.Username) == gatewayUsername {
		if !secretEqual(pk.Connect.Password, h.gatewayPassword) {
			return packets.ErrBadUsernameOrPassword, rejectGatewayPassword
		}
		return packets.CodeSuccess, ""
	}

	if h.deviceKey == nil {
		return packets.CodeSuccess, "" // local development: devices are not checked
	}
	if !signableDeviceID(id) {
		return packets.ErrNotAuthorized, rejectDeviceBadClientID
	}
	if !otaUsername(string(pk.Connect.Username)) {
		return packets.ErrNotAuthorized, rejectDeviceBadUsername
	}
	want := deviceSignature(h.deviceKey, id, string(pk.Connect.Username))
	if !secretEqual(pk.Connect.Password, []byte(want)) {
		return packets.ErrNotAuthorized, rejectDeviceNotSigned
	}
	return packets.CodeSuccess, ""
}

// validClientID: 1 to 128 bytes, usable as one topic level (rule 10). "inline" is also
// refused: it is the id of mochi's own inline client, which a real client would take over.
func validClientID(id string) bool {
	return len(id) > 0 && len(id) <= maxClientIDLen &&
		!strings.ContainsAny(id, "/+#\x00") &&
		id != mqtt.InlineClientId
}

// hasRefusedCharacter: whether a client id is not well-formed UTF-8 (MQTT 3.1.1 section
// 1.5.3 [MQTT-1.5.3-1], MQTT 5 section 1.5.4 [MQTT-1.5.4-1]; mochi's decoder refuses that
// too, this does not rely on it), or holds U+FFFD, a C0 or C1 control, DEL or a Unicode
// non-character. The verifier refuses the same (hasRefusedCharacter in
// gateway/src/auth/device-credentials.ts): it reads the id as EMQX's JSON gives it, where
// bytes that are not UTF-8 may already be U+FFFD and a lone surrogate signs as U+FFFD's
// bytes, so an id it cannot tell apart from another is refused on both sides.
func hasRefusedCharacter(id string) bool {
	if !utf8.ValidString(id) {
		return true
	}
	for _, r := range id {
		if r <= 0x1f || (r >= 0x7f && r <= 0x9f) || r == utf8.RuneError ||
			(r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe {
			return true
		}
	}
	return false
}

// signableDeviceID: the three-part OTA form GROUP@@@MAC@@@UUID, no part empty, the MAC part
// six lowercase hex pairs joined by "_" (or ":"), exactly as the gateway's verifier reads it
// (gateway/src/auth/device-credentials.ts, gateway/src/protocol/client-id.ts): a device
// the broker lets in is one the gateways serve. testdata/device-credentials.json holds the
// cases both sides are tested against.
func signableDeviceID(id string) bool {
	parts := strings.Split(id, "@@@")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
	}
	return macPart.MatchString(strings.ReplaceAll(parts[1], "_", ":"))
}

var macPart = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)

// maxUsernameLen: the OTA's username is base64 of {"ip":"..."}; much longer is not one.
const maxUsernameLen = 1024

// otaUsername: what the OTA issues as the device username, standard padded canonical
// base64 of UTF-8 JSON that is an object (the verifier's rule, too).
func otaUsername(u string) bool {
	if u == "" || len(u) > maxUsernameLen {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(u)
	// Re-encoding refuses what Go's decoder tolerates and the verifier does not:
	// non-zero trailing bits, embedded newlines.
	if err != nil || base64.StdEncoding.EncodeToString(raw) != u || !utf8.Valid(raw) {
		return false
	}
	// The verifier decodes with TextDecoder, which drops one leading byte order mark, then
	// JSON.parse; json.Valid checks syntax only (so 1e400 is as valid as in JavaScript).
	text := bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	start := bytes.TrimLeft(text, " \t\r\n") // JSON's own whitespace, nothing else
	return json.Valid(text) && len(start) > 0 && start[0] == '{'
}

// deviceSignature is the device password: base64 (standard, padded) of
// HMAC-SHA256(key, clientId + "|" + username).
func deviceSignature(key []byte, clientID, username string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(clientID + "|" + username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// secretEqual compares in constant time, without leaking the length either.
func secretEqual(got, want []byte) bool {
	a := sha256.Sum256(got)
	b := sha256.Sum256(want)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// checkWill drops a will message the client would not be allowed to publish itself (mochi
// publishes wills without any ACL check). A device's allowed will (on device-server) is
// re-routed like its other messages, in OnWill.
func (h *contractHook) checkWill(cl *mqtt.Client) {
	will := cl.Properties.Will
	if will.Flag == 0 {
		return
	}
	var ok bool
	if isGateway(cl) {
		ok = gatewayMayPublish(will.TopicName) && (!will.Retain || gatewayMayRetain(will.TopicName))
	} else {
		ok = deviceMayPublish(will.TopicName) && !will.Retain
	}
	if ok {
		return
	}
	cl.Properties.Will = mqtt.Will{}
	h.stats.aclDenied.Add(1)
	h.log.Warn("will refused",
		"event", "acl_denied",
		"action", "will",
		"client", cl.ID,
		"kind", kindOf(cl),
		"topic", short(will.TopicName),
		"retain", will.Retain)
}
