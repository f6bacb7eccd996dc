package main

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Rule 7: the gateway user needs the gateway password.
func TestGatewayWrongPasswordRefused(t *testing.T) {
	b := startBroker(t, "")
	for _, pw := range []string{"wrong", "", testGatewayPassword + "x"} {
		_, ack, err := dialV5(t, b.addr, "gw-1", v5Options{username: gatewayUsername, password: pw})
		if err == nil || ack == nil || ack.ReasonCode != packets.ErrBadUsernameOrPassword.Code {
			t.Errorf("password %q: err=%v ack=%+v, want CONNACK 0x86", pw, err, ack)
		}
	}
	// MQTT 3.1.1 spells it 0x04.
	if code := dialV3Refused(t, b.addr, "gw-1", gatewayUsername, "wrong"); code != 0x04 {
		t.Errorf("v3 CONNACK %#x, want 0x04", code)
	}
	connectGateway(t, b, "gw-1", nil) // and the right one works
	if got := b.Stats().ConnectsRejected[rejectGatewayPassword]; got != 4 {
		t.Errorf("rejected counter = %d, want 4", got)
	}
}

// assertClientIDRefused: a CONNECT with client id `id` is refused, whether as a device or as
// the gateway: MQTT 5 CONNACK "client identifier not valid" (0x85), MQTT 3.1.1 "identifier
// rejected" (0x02).
func assertClientIDRefused(t *testing.T, addr, id string) {
	t.Helper()
	for _, user := range []string{"device", gatewayUsername} {
		_, ack, err := dialV5(t, addr, id, v5Options{username: user, password: testGatewayPassword})
		if err == nil || ack == nil || ack.ReasonCode != packets.ErrClientIdentifierNotValid.Code {
			t.Errorf("id %q user %s: err=%v ack=%+v, want CONNACK 0x85", id, user, err, ack)
		}
	}
	if code := dialV3Refused(t, addr, id, "device", ""); code != 0x02 {
		t.Errorf("v3 id %q: CONNACK %#x, want 0x02", id, code)
	}
}

// Rule 10: client ids must be usable as one topic level.
func TestBadClientIDsRefused(t *testing.T) {
	b := startBroker(t, "")
	for _, id := range []string{
		"",
		strings.Repeat("a", 129),
		"GID@@@a0_85/x",
		"dev+1",
		"dev#1",
		"inline", // mochi's own inline client
	} {
		assertClientIDRefused(t, b.addr, id)
	}
	// A NUL never reaches the hook: mochi's decoder treats it as a malformed string
	// (MQTT forbids U+0000) and closes the connection without a CONNACK.
	if code := dialV3Refused(t, b.addr, "dev\x00id", "device", ""); code != -1 && code != 0x02 {
		t.Errorf("id with NUL: CONNACK %#x, want refusal", code)
	}
	connectDevice(t, b, strings.Repeat("a", 128)) // the longest allowed
}

// Client ids the verifier cannot tell apart from others (docs/security.md section 4), from
// any client, key or not: CONNACK "client identifier not valid", counted by reason. The
// shared vectors (vectors_test.go) hold the rule; this is the wire and the counter.
func TestClientIDCharactersRefused(t *testing.T) {
	b := startBroker(t, "")
	ids := []string{"dev-\ufffd", "dev-\x01", "dev-\x7f", "dev-\u0085", "dev-\uffff", "dev-\ufdd0"}
	for _, id := range ids {
		assertClientIDRefused(t, b.addr, id)
	}
	if got, want := b.Stats().ConnectsRejected[rejectClientIDChars], int64(3*len(ids)); got != want {
		t.Errorf("%s counted %d, want %d", rejectClientIDChars, got, want)
	}
	// Bytes that are not UTF-8 (FF; a surrogate's encoding ED A0 80) never reach the hook:
	// mochi's decoder refuses a malformed string and closes without a CONNACK.
	for _, id := range []string{"dev-\xff", "dev-\xed\xa0\x80"} {
		if code := dialV3Refused(t, b.addr, id, "device", ""); code != -1 && code != 0x02 {
			t.Errorf("id %q: CONNACK %#x, want refusal", id, code)
		}
	}
	connectDevice(t, b, "dev-\u00e9\U0001F600") // well-formed non-ASCII is a client id like any other
}

// Device authentication with a signing key.
// Usernames as the OTA issues them: base64 of {"ip":"..."}.
var (
	otaUser      = base64.StdEncoding.EncodeToString([]byte(`{"ip":"127.0.0.1"}`))
	otherOTAUser = base64.StdEncoding.EncodeToString([]byte(`{"ip":"10.0.0.1"}`))
)

func TestDeviceHMACAuth(t *testing.T) {
	const key = "device-signing-key"
	b := startBroker(t, key)
	sig := deviceSignature([]byte(key), deviceID, otaUser)

	if c := dialV3(t, b.addr, deviceID, otaUser, sig); c.connack.ReasonCode != 0x00 {
		t.Fatalf("signed device refused: CONNACK 0x%02x", c.connack.ReasonCode)
	}
	refusals := map[string]struct{ id, user, pw string }{
		"no password":     {deviceID, otaUser, ""},
		"wrong password":  {deviceID, otaUser, "bm90IGl0"},
		"other username":  {deviceID, "someone", sig},
		"other client id": {"GID_test@@@a0_85_e3_f4_49_35@@@x", otaUser, sig},
		"two-part id":     {"GID_test@@@a0_85_e3_f4_49_34", otaUser, deviceSignature([]byte(key), "GID_test@@@a0_85_e3_f4_49_34", otaUser)},
		"empty part":      {"GID_test@@@@@@x", otaUser, deviceSignature([]byte(key), "GID_test@@@@@@x", otaUser)},
		"unpadded":        {deviceID, otaUser, strings.TrimRight(sig, "=")},
	}
	for name, r := range refusals {
		if code := dialV3Refused(t, b.addr, r.id, r.user, r.pw); code != 0x05 { // v3 "not authorized"
			t.Errorf("%s: CONNACK %#x, want 0x05", name, code)
		}
	}
	_, ack, err := dialV5(t, b.addr, deviceID, v5Options{username: otaUser, password: "bad"})
	if err == nil || ack == nil || ack.ReasonCode != packets.ErrNotAuthorized.Code {
		t.Errorf("v5 bad signature: err=%v ack=%+v, want CONNACK 0x87", err, ack)
	}
	connectGateway(t, b, "gw-1", nil) // gateways are unaffected by the device key
}

// Without a key, devices need no password at all.
func TestDevicesUncheckedWithoutKey(t *testing.T) {
	b := startBroker(t, "")
	if c := dialV3(t, b.addr, "anything-goes", "", ""); c.connack.ReasonCode != 0x00 {
		t.Fatalf("CONNACK 0x%02x, want 0x00", c.connack.ReasonCode)
	}
}

// The signature format, pinned so the gateway/OTA side can reproduce it:
// base64(std, padded) of HMAC-SHA256(key, clientId + "|" + username).
func TestDeviceSignatureFormat(t *testing.T) {
	got := deviceSignature([]byte("key"), "G@@@M@@@U", "user")
	const want = "JIBN+BTlZjIM2OCYaDlznR8whmJRv2EHXxkawNs6FnE=" // printf %s "G@@@M@@@U|user" | openssl dgst -sha256 -hmac key -binary | base64
	if got != want {
		t.Fatalf("signature = %s, want %s", got, want)
	}
}
