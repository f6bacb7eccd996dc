package main

import (
	"io"
	"net"
	"testing"
	"time"
)

// rawV5Connect is an MQTT 5 CONNECT with a property (session expiry 0) before the payload,
// so that the client id sits behind a properties block.
func rawV5Connect(clientID string) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 5, 0x11, 0, 0, 0, 0}
	body = append(body, byte(len(clientID)>>8), byte(len(clientID)))
	body = append(body, clientID...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// Rule 10 for client ids mochi's decoder refuses (not UTF-8, or a NUL) before any hook
// runs: the connection is closed without a CONNACK, as before, and now counted and logged
// as client_id_bad_characters like the refusals our hook makes. It was counted nowhere.
func TestClientIDNotUTF8IsCounted(t *testing.T) {
	b := startBroker(t, "")
	for _, id := range []string{"dev-\xff", "dev-\xed\xa0\x80", "dev\x00id"} {
		if code := dialV3Refused(t, b.addr, id, "device", ""); code != -1 {
			t.Errorf("id %q: CONNACK %#x, want the connection closed", id, code)
		}
	}
	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write(rawV5Connect("dev-\xfe")); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	if rest, err := io.ReadAll(conn); err != nil || len(rest) != 0 {
		t.Fatalf("v5: read %d bytes, err %v; want the connection closed without a CONNACK", len(rest), err)
	}
	if got := b.Stats().ConnectsRejected[rejectClientIDChars]; got != 4 {
		t.Errorf("%s counted %d, want 4", rejectClientIDChars, got)
	}
}

// A well-formed id, in either version, is left to the hooks, and counted nowhere here.
func TestConnectClientIDReadsBothVersions(t *testing.T) {
	id, ok := connectClientID(rawV5Connect("dev-\u00e9"))
	if !ok || string(id) != "dev-\u00e9" {
		t.Fatalf("v5: %q %v", id, ok)
	}
	v3 := []byte{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, 4, 'd', 'e', 'v', '1'}
	if id, ok := connectClientID(v3); !ok || string(id) != "dev1" {
		t.Fatalf("v3: %q %v", id, ok)
	}
	if _, ok := connectClientID(v3[:14]); ok {
		t.Fatal("a truncated CONNECT yielded a client id")
	}
	b := startBroker(t, "")
	connectDevice(t, b, "dev-\u00e9")
	if got := b.Stats().ConnectsRejected[rejectClientIDChars]; got != 0 {
		t.Errorf("%s counted %d for a good id", rejectClientIDChars, got)
	}
}
