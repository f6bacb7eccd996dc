package room

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"voicefleet/media/internal/ipc"
)

// silentSignalServer accepts LiveKit's signal WebSocket and then says nothing, as a server
// stuck before its join response would; it returns its ws:// URL.
func silentSignalServer(t *testing.T) string {
	t.Helper()
	held := make(chan *websocket.Conn, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/rtc") {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err == nil {
			held <- c
		}
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		closeHeld(held)
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// readType waits for the next control frame and returns its type and body.
func readType(t *testing.T, out *recordingOut, within time.Duration, what string) (byte, []byte) {
	t.Helper()
	select {
	case f := <-out.frames:
		return f[4], f[9:]
	case <-time.After(within):
		t.Fatalf("no %s within %v", what, within)
		return 0, nil
	}
}

// The SDK bounds the WebSocket dial by the join's context but not its wait for the
// server's first message: a server that upgrades and stays silent held the join, and so
// the session's Leave, for good (the gateway gave up after 12 s and 5 s, the goroutines
// and the connection stayed for the life of the process).
func TestAJoinToASilentServerFailsAtItsTimeoutAndLeaves(t *testing.T) {
	old := joinTimeout
	joinTimeout = 300 * time.Millisecond
	t.Cleanup(func() { joinTimeout = old })
	out := newRecordingOut()
	s := Join(5, out, silentSignalServer(t), "token")
	typ, body := readType(t, out, 3*time.Second, "join_failed")
	if typ != ipc.JoinFailed {
		t.Fatalf("frame %#x, want join_failed", typ)
	}
	t.Logf("join failed: %s", ipc.NewCursor(body).String())
	select {
	case reason := <-out.counts:
		if reason != "join_timed_out" {
			t.Fatalf("counted %q", reason)
		}
	case <-time.After(time.Second):
		t.Fatal("not counted")
	}
	go s.Leave()
	if typ, _ := readType(t, out, 3*time.Second, "left"); typ != ipc.Left {
		t.Fatalf("frame %#x, want left", typ)
	}
}

// A server that accepts the TCP connection and never answers the HTTP upgrade: the SDK's
// dial is bounded by the join's context. This held before too, but the SDK then asked the
// server to validate the token, with a timeout of its own (3 s) beyond the join's.
func TestAJoinToAServerThatNeverUpgradesFailsAtItsTimeout(t *testing.T) {
	old := joinTimeout
	joinTimeout = 300 * time.Millisecond
	t.Cleanup(func() { joinTimeout = old })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		closeHeld(held)
	})
	out := newRecordingOut()
	s := Join(6, out, "ws://"+ln.Addr().String(), "token")
	started := time.Now()
	if typ, _ := readType(t, out, 5*time.Second, "join_failed"); typ != ipc.JoinFailed {
		t.Fatalf("frame %#x, want join_failed", typ)
	}
	if took := time.Since(started); took > joinTimeout+joinGiveUp+500*time.Millisecond {
		t.Fatalf("join failed after %v", took)
	}
	if reason := <-out.counts; reason != "join_timed_out" {
		t.Fatalf("counted %q", reason)
	}
	go s.Leave()
	if typ, _ := readType(t, out, 3*time.Second, "left"); typ != ipc.Left {
		t.Fatalf("frame %#x, want left", typ)
	}
}

// closeHeld closes every connection a silent test server is still holding.
func closeHeld[C io.Closer](held chan C) {
	for {
		select {
		case c := <-held:
			_ = c.Close()
		default:
			return
		}
	}
}
