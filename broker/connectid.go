package main

import (
	"bytes"
	"unicode/utf8"
)

// A client id that is not well-formed UTF-8, or holds a NUL, never reaches our OnConnect:
// mochi's decoder refuses the CONNECT as a malformed string (packets.decodeString) and
// closes the connection without a CONNACK, before any hook runs. firstPacketConn reads
// the client id out of the CONNECT as it passes, so that such a refusal is counted and
// logged with the others of rule 10 (reason client_id_bad_characters).

// connectClientID returns the client id of a complete CONNECT packet (fixed header
// included), or false when the packet is too short to hold one.
func connectClientID(pk []byte) ([]byte, bool) {
	_, i, ok := varInt(pk, 1) // remaining length
	if !ok {
		return nil, false
	}
	if _, i, ok = lengthPrefixed(pk, i); !ok { // protocol name
		return nil, false
	}
	if i+4 > len(pk) {
		return nil, false
	}
	version := pk[i]
	i += 4 // version, flags, keepalive
	if version == 5 {
		n, next, ok := varInt(pk, i) // properties length
		if !ok {
			return nil, false
		}
		i = next + n
	}
	id, _, ok := lengthPrefixed(pk, i)
	return id, ok
}

// decodableString is what mochi's decoder accepts as an MQTT string: UTF-8, no NUL.
func decodableString(b []byte) bool {
	return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0
}

// varInt decodes MQTT's variable byte integer at b[i:], returning the value and the index
// after it.
func varInt(b []byte, i int) (int, int, bool) {
	v, mul := 0, 1
	for k := 0; k < 4 && i < len(b); k++ {
		x := b[i]
		i++
		v += int(x&0x7f) * mul
		if x&0x80 == 0 {
			return v, i, true
		}
		mul *= 128
	}
	return 0, 0, false
}

// lengthPrefixed reads a two-byte big-endian length and that many bytes at b[i:].
func lengthPrefixed(b []byte, i int) ([]byte, int, bool) {
	if i < 0 || i+2 > len(b) {
		return nil, 0, false
	}
	n := int(b[i])<<8 | int(b[i+1])
	i += 2
	if i+n > len(b) {
		return nil, 0, false
	}
	return b[i : i+n], i + n, true
}
