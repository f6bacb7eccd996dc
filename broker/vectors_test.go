package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The broker and the gateway's verifier agree on every case of the shared vector file
// (gateway/test/credential-vectors.test.ts runs the same cases through the verifier).
func TestSharedCredentialVectors(t *testing.T) {
	raw, err := os.ReadFile("../testdata/device-credentials.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Key   string `json:"key"`
		Cases []struct {
			Name     string `json:"name"`
			Valid    bool   `json:"valid"`
			ClientID string `json:"clientId"`
			Username string `json:"username"`
			Password string `json:"password"`
			// Wire: the CONNECT's bytes where JSON cannot carry them (not UTF-8).
			Wire *struct {
				ClientIDHex string `json:"clientIdHex"`
				UsernameHex string `json:"usernameHex"`
				Password    string `json:"password"`
			} `json:"wire"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) < 20 {
		t.Fatalf("only %d cases", len(doc.Cases))
	}
	h := &contractHook{gatewayPassword: []byte("gw"), deviceKey: []byte(doc.Key)}
	for _, c := range doc.Cases {
		id, username, password := c.ClientID, c.Username, c.Password
		if w := c.Wire; w != nil {
			id, username, password = fromHex(t, c.Name, w.ClientIDHex, id), fromHex(t, c.Name, w.UsernameHex, username), w.Password
		}
		pk := connectPacket(id, username, password)
		code, reason := h.authenticate(pk)
		if got := code == packets.CodeSuccess; got != c.Valid {
			t.Errorf("%s: accepted=%v (%s), want %v", c.Name, got, reason, c.Valid)
		}
	}
}

// fromHex decodes a wire field, or keeps the JSON one where the wire does not give it.
func fromHex(t *testing.T, name, h, otherwise string) string {
	if h == "" {
		return otherwise
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(b)
}
