package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// ---- MQTT 5 clients (paho.golang): gateways, and devices where v5 matters ----

type v5Client struct {
	*paho.Client
	conn net.Conn
	msgs chan *paho.Publish    // every PUBLISH received
	disc chan *paho.Disconnect // a DISCONNECT from the server
}

type v5Options struct {
	username string
	password string
	will     *paho.WillMessage
}

// dialV5 connects an MQTT 5 client and returns the CONNACK with any refusal error.
func dialV5(t *testing.T, addr, clientID string, o v5Options) (*v5Client, *paho.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &v5Client{
		conn: conn,
		msgs: make(chan *paho.Publish, 256),
		disc: make(chan *paho.Disconnect, 1),
	}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				c.msgs <- pr.Packet
				return true, nil
			},
		},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case c.disc <- d:
			default:
			}
		},
		OnClientError: func(error) {},
	})
	cp := &paho.Connect{
		ClientID:    clientID,
		KeepAlive:   30,
		CleanStart:  true,
		WillMessage: o.will,
	}
	if o.username != "" {
		cp.Username, cp.UsernameFlag = o.username, true
	}
	if o.password != "" {
		cp.Password, cp.PasswordFlag = []byte(o.password), true
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err == nil {
		t.Cleanup(func() { _ = conn.Close() })
	}
	return c, ack, err
}

func connectGateway(t *testing.T, b *testBroker, clientID string, will *paho.WillMessage) *v5Client {
	t.Helper()
	c, _, err := dialV5(t, b.addr, clientID, v5Options{username: gatewayUsername, password: testGatewayPassword, will: will})
	if err != nil {
		t.Fatalf("gateway %s connect: %v", clientID, err)
	}
	return c
}

func (c *v5Client) subscribe(t *testing.T, filters ...string) *paho.Suback {
	t.Helper()
	subs := make([]paho.SubscribeOptions, len(filters))
	for i, f := range filters {
		subs[i] = paho.SubscribeOptions{Topic: f}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ack, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
	if ack == nil {
		t.Fatalf("subscribe %v: no SUBACK: %v", filters, err)
	}
	return ack
}

func (c *v5Client) publish(t *testing.T, topic string, payload []byte, qos byte, retain bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos, Retain: retain}); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

// expect waits for the next message on topic, failing on any other topic or a timeout.
func (c *v5Client) expect(t *testing.T, topic string) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		if m.Topic != topic {
			t.Fatalf("got a message on %q, want %q", m.Topic, topic)
		}
		return m
	case <-time.After(waitFor):
		t.Fatalf("no message on %q within %v", topic, waitFor)
	}
	return nil
}

// expectNone asserts that nothing arrives for a while.
func (c *v5Client) expectNone(t *testing.T) {
	t.Helper()
	select {
	case m := <-c.msgs:
		t.Fatalf("unexpected message on %q: %q", m.Topic, m.Payload)
	case <-time.After(quietFor):
	}
}
