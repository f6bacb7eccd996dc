package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// startBrokerWith runs a broker with cfg (address, password and logger filled in) and
// returns it with its log buffer (info level: what an operator would get).
func startBrokerWith(t *testing.T, cfg Config) (*testBroker, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Addr = "127.0.0.1:0"
	cfg.GatewayPassword = testGatewayPassword
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	addr, err := b.Start()
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(b.Close)
	return &testBroker{Broker: b, addr: addr}, logs
}

// dialFrom opens a TCP connection to addr from a given loopback source address (another
// host, as far as the broker can tell).
func dialFrom(t *testing.T, source, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", source, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// slowConnectHeader: a CONNECT fixed header announcing 16,000 bytes (just within
// maxConnectSize), then nothing.
var slowConnectHeader = []byte{0x10, 0x80, 0x7d}

// A first packet announcing more than maxConnectSize is refused before mochi allocates it.
func TestOversizedConnectRefused(t *testing.T) {
	b, _ := startBrokerWith(t, Config{})
	c := dialFrom(t, "127.0.0.1", b.addr)
	_, _ = c.Write([]byte{0x10, 0xe0, 0xd4, 0x03}) // 60,000 bytes announced
	if !closedWithin(c, waitFor) {
		t.Fatal("a CONNECT announcing 60,000 bytes is still open")
	}
	if got := b.Stats().ConnsRefused[refuseConnectTooLarge]; got != 1 {
		t.Fatalf("connect_too_large = %d, want 1", got)
	}
	connectDevice(t, b, deviceID)
}

// closedWithin reports whether the server closes c within d (whatever it sends first).
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return err == nil || !isTimeout(err)
}

// connectBytes encodes an MQTT 3.1.1 CONNECT.
func connectBytes(t *testing.T, clientID, username, password string) []byte {
	t.Helper()
	pk := connectPacket(clientID, username, password)
	pk.ProtocolVersion = 4
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// A connection that does not complete CONNECT in time is closed: a slow client holds nothing.
func TestConnectDeadline(t *testing.T) {
	b, _ := startBrokerWith(t, Config{Limits: Limits{ConnectTimeout: 300 * time.Millisecond}})
	idle := dialFrom(t, "127.0.0.1", b.addr)
	slow := dialFrom(t, "127.0.0.1", b.addr)
	if _, err := slow.Write(slowConnectHeader); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]net.Conn{"idle": idle, "slow": slow} {
		if !closedWithin(c, 3*time.Second) {
			t.Errorf("%s connection still open after the CONNECT deadline", name)
		}
	}
	// A client that connects in time keeps its connection past the CONNECT deadline.
	dev := connectDevice(t, b, deviceID)
	time.Sleep(600 * time.Millisecond)
	dev.publish(t, topicDeviceServer, []byte(`{"type":"listen"}`), 0, false)
	select {
	case <-dev.closed:
		t.Fatal("an accepted client was cut by the CONNECT deadline")
	case <-time.After(quietFor):
	}
}

// The reported exhaustion: 2,000 slow connections from one host, each announcing a
// CONNECT it never sends. The host gets its 256 pending slots and no more, and a gateway
// (another address) still connects.
func TestSlowConnectionFloodFromOneHost(t *testing.T) {
	b, _ := startBrokerWith(t, Config{})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	held := 0
	for i := 0; i < 2000; i++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		c, err := d.Dial("tcp", b.addr)
		if err != nil {
			continue
		}
		defer c.Close()
		_, _ = c.Write(slowConnectHeader)
		held++
	}
	// The dials return once the kernel has queued each connection; wait for the accept
	// loop to have taken (or refused) them all.
	refused := func() int64 { return b.Stats().ConnsRefused[refusePendingPerIP] }
	deadline := time.Now().Add(waitFor)
	for refused() < int64(held-DefaultLimits.MaxPendingPerIP) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	open, pending := b.guard.counts()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("2,000 slow connections from one host: %d open at the broker (%d pending); heap in use %.1f -> %.1f MB",
		open, pending, float64(before.HeapInuse)/1e6, float64(after.HeapInuse)/1e6)
	if pending > DefaultLimits.MaxPendingPerIP {
		t.Fatalf("%d pending connections, want at most %d", pending, DefaultLimits.MaxPendingPerIP)
	}
	if got := refused(); got < int64(held-DefaultLimits.MaxPendingPerIP) {
		t.Errorf("%d refused as too_many_pending_from_ip, want %d", got, held-DefaultLimits.MaxPendingPerIP)
	}
	connectGateway(t, b, "gw-1", nil)
}

// The connection cap counts every connection; a freed slot can be taken again.
func TestMaxConnections(t *testing.T) {
	b, _ := startBrokerWith(t, Config{Limits: Limits{MaxConnections: 2}})
	connectDevice(t, b, "GID_test@@@a0_85_e3_f4_49_01@@@x")
	second := connectDevice(t, b, "GID_test@@@a0_85_e3_f4_49_02@@@x")
	if code := dialV3Refused(t, b.addr, "GID_test@@@a0_85_e3_f4_49_03@@@x", "", ""); code != -1 {
		t.Fatalf("third connection got CONNACK %#x, want closed before CONNECT", code)
	}
	if got := b.Stats().ConnsRefused[refuseTooMany]; got != 1 {
		t.Fatalf("too_many_connections = %d, want 1", got)
	}
	second.disconnect(t)
	deadline := time.Now().Add(waitFor)
	for {
		if open, _ := b.guard.counts(); open < 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the disconnected client's slot was never freed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	connectDevice(t, b, "GID_test@@@a0_85_e3_f4_49_03@@@x")
}

// 3,000 refused CONNECTs are all counted, and cost a few log lines, not 3,000.
func TestRefusedConnectLogsRateLimited(t *testing.T) {
	b, logs := startBrokerWith(t, Config{DeviceSigningKey: "k"})
	const n = 3000
	for i := 0; i < n; i++ {
		c := dialFrom(t, "127.0.0.1", b.addr)
		_, _ = c.Write(connectBytes(t, deviceID, otaUser, "not-signed"))
		if !closedWithin(c, waitFor) {
			t.Fatalf("refused CONNECT %d left open", i)
		}
		_ = c.Close()
	}
	if got := b.Stats().ConnectsRejected[rejectDeviceNotSigned]; got != n {
		t.Fatalf("%d refusals counted, want %d", got, n)
	}
	size := len(logs.String())
	t.Logf("%d refused CONNECTs: %d bytes of log", n, size)
	if size > 64<<10 {
		t.Fatalf("%d bytes of log for %d refused CONNECTs", size, n)
	}
}

// testCA makes a CA and a server certificate for 127.0.0.1 signed by it, as PEM files.
func testCA(t *testing.T) (caPEM []byte, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "voice-fleet test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), certFile, keyFile
}

// The TLS listener serves a client that verifies the certificate against the CA, and its
// handshake falls under the CONNECT deadline too.
func TestTLSListener(t *testing.T) {
	caPEM, certFile, keyFile := testCA(t)
	b, _ := startBrokerWith(t, Config{
		TLSAddr: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile,
		Limits: Limits{ConnectTimeout: 500 * time.Millisecond},
	})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	conn, err := tls.Dial("tcp", b.TLSAddress(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write(connectBytes(t, deviceID, "", "")); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 0x20 || ack[3] != packets.CodeSuccess.Code {
		t.Fatalf("CONNACK over TLS: % x, %v", ack, err)
	}
	// Past the CONNECT deadline, the accepted TLS client is still connected.
	time.Sleep(700 * time.Millisecond)
	_ = conn.SetReadDeadline(time.Now().Add(quietFor))
	if _, err := conn.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("accepted TLS client cut: %v", err)
	}
	// A client that never starts its handshake is closed at the deadline.
	if raw := dialFrom(t, "127.0.0.1", b.TLSAddress()); !closedWithin(raw, 3*time.Second) {
		t.Fatal("a TLS connection without a handshake is still open")
	}
	// A client that does not trust the CA refuses the certificate.
	if c, err := tls.Dial("tcp", b.TLSAddress(), &tls.Config{ServerName: "127.0.0.1"}); err == nil {
		c.Close()
		t.Fatal("certificate accepted without the test CA")
	}
}
