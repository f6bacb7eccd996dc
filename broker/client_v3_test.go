package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// ---- MQTT 3.1.1 client from mochi's packet codec: devices, as the firmware speaks ----

type v3Client struct {
	conn    net.Conn
	connack packets.Packet
	msgs    chan packets.Packet // PUBLISH packets received
	acks    chan packets.Packet // every other packet received
	closed  chan struct{}       // closed when the server closes the connection
}

// dialV3 sends CONNECT and waits for the CONNACK; the caller checks its reason code.
func dialV3(t *testing.T, addr, clientID, username, password string) *v3Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &v3Client{
		conn:   conn,
		msgs:   make(chan packets.Packet, 256),
		acks:   make(chan packets.Packet, 16),
		closed: make(chan struct{}),
	}
	go c.readLoop()
	c.send(t, connectPacket(clientID, username, password))
	c.connack = c.next(t, packets.Connack)
	return c
}

func connectPacket(clientID, username, password string) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            true,
			Keepalive:        30,
			ClientIdentifier: clientID,
			Username:         []byte(username),
			UsernameFlag:     username != "",
			Password:         []byte(password),
			PasswordFlag:     password != "",
		},
	}
}

// connectDevice connects a device over MQTT 3.1.1 and requires it to be accepted.
func connectDevice(t *testing.T, b *testBroker, clientID string) *v3Client {
	t.Helper()
	c := dialV3(t, b.addr, clientID, "device", "")
	if c.connack.ReasonCode != packets.CodeSuccess.Code {
		t.Fatalf("device %s refused: CONNACK 0x%02x", clientID, c.connack.ReasonCode)
	}
	return c
}

func (c *v3Client) readLoop() {
	defer close(c.closed)
	r := bufio.NewReader(c.conn)
	for {
		hb, err := r.ReadByte()
		if err != nil {
			return
		}
		var fh packets.FixedHeader
		if err := fh.Decode(hb); err != nil {
			return
		}
		n, _, err := packets.DecodeLength(r)
		if err != nil {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		pk := packets.Packet{FixedHeader: fh, ProtocolVersion: 4}
		switch fh.Type {
		case packets.Publish:
			err = pk.PublishDecode(body)
		case packets.Connack:
			err = pk.ConnackDecode(body)
		case packets.Suback:
			err = pk.SubackDecode(body)
		case packets.Puback:
			err = pk.PubackDecode(body)
		case packets.Disconnect:
			err = pk.DisconnectDecode(body)
		}
		if err != nil {
			return
		}
		if fh.Type == packets.Publish {
			c.msgs <- pk
		} else {
			c.acks <- pk
		}
	}
}

func (c *v3Client) send(t *testing.T, pk packets.Packet) {
	t.Helper()
	pk.ProtocolVersion = 4
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("test client cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// next waits for the next non-PUBLISH packet, which must be of type want.
func (c *v3Client) next(t *testing.T, want byte) packets.Packet {
	t.Helper()
	check := func(pk packets.Packet) packets.Packet {
		if pk.FixedHeader.Type != want {
			t.Fatalf("got packet type %d, want %d", pk.FixedHeader.Type, want)
		}
		return pk
	}
	select {
	case pk := <-c.acks:
		return check(pk)
	case <-c.closed:
		// The reader queues every packet before it reports the close.
		select {
		case pk := <-c.acks:
			return check(pk)
		default:
		}
		t.Fatalf("connection closed while waiting for packet type %d", want)
	case <-time.After(waitFor):
		t.Fatalf("no packet type %d within %v", want, waitFor)
	}
	return packets.Packet{}
}

// dialV3Refused is dialV3 for a CONNECT the server must refuse: it returns the CONNACK
// return code, or -1 when the server closed the connection without any CONNACK.
func dialV3Refused(t *testing.T, addr, clientID, username, password string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &v3Client{conn: conn, msgs: make(chan packets.Packet, 1), acks: make(chan packets.Packet, 4), closed: make(chan struct{})}
	go c.readLoop()
	c.send(t, connectPacket(clientID, username, password))
	select {
	case <-c.closed:
	case <-time.After(waitFor):
		t.Fatalf("connection %q still open after %v: not refused", clientID, waitFor)
	}
	select {
	case pk := <-c.acks:
		if pk.FixedHeader.Type != packets.Connack {
			t.Fatalf("got packet type %d, want CONNACK", pk.FixedHeader.Type)
		}
		return int(pk.ReasonCode)
	default:
		return -1
	}
}

func (c *v3Client) publish(t *testing.T, topic string, payload []byte, qos byte, retain bool) {
	t.Helper()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic,
		Payload:     payload,
	}
	if qos > 0 {
		pk.PacketID = 7
	}
	c.send(t, pk)
}

// subscribe sends one SUBSCRIBE and returns the SUBACK's reason code.
func (c *v3Client) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	c.send(t, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    9,
		Filters:     packets.Subscriptions{{Filter: filter}},
	})
	ack := c.next(t, packets.Suback)
	if len(ack.ReasonCodes) != 1 {
		t.Fatalf("SUBACK with %d codes", len(ack.ReasonCodes))
	}
	return ack.ReasonCodes[0]
}

func (c *v3Client) disconnect(t *testing.T) {
	t.Helper()
	c.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
}

func (c *v3Client) expect(t *testing.T, topic string) packets.Packet {
	t.Helper()
	select {
	case m := <-c.msgs:
		if m.TopicName != topic {
			t.Fatalf("got a message on %q, want %q", m.TopicName, topic)
		}
		return m
	case <-time.After(waitFor):
		t.Fatalf("no message on %q within %v", topic, waitFor)
	}
	return packets.Packet{}
}

// expectClosed waits for the server to close the connection.
func (c *v3Client) expectClosed(t *testing.T) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(waitFor):
		t.Fatalf("connection still open after %v", waitFor)
	}
}
