package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"voicefleet/media/internal/ipc"
	"voicefleet/media/internal/room"
)

// The test binary runs main() itself when asked, so a test can drive the real process.
func TestMain(m *testing.M) {
	if os.Getenv("VOICE_MEDIA_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// newTestHandler returns a handler whose output frames can be read back.
func newTestHandler(t *testing.T) (*handler, *bufio.Reader) {
	t.Helper()
	pr, pw := io.Pipe()
	out := newWriter(pw, 16)
	t.Cleanup(func() { _ = pr.Close() })
	return &handler{out: out, sessions: map[uint32]*room.Session{}}, bufio.NewReader(pr)
}

func readFrame(t *testing.T, r *bufio.Reader) ipc.Frame {
	t.Helper()
	got := make(chan ipc.Frame, 1)
	go func() {
		f, err := ipc.ReadFrame(r)
		if err == nil {
			got <- f
		}
	}()
	select {
	case f := <-got:
		return f
	case <-time.After(2 * time.Second):
		t.Fatal("no frame")
		return ipc.Frame{}
	}
}

func TestMalformedJoinIsRefusedAtOnce(t *testing.T) {
	h, r := newTestHandler(t)
	h.handle(ipc.Frame{Type: ipc.Join, Session: 9, Body: []byte{5, 0, 'w', 's'}})
	f := readFrame(t, r)
	if f.Type != ipc.JoinFailed || f.Session != 9 {
		t.Fatalf("got %+v", f)
	}
	if reason := ipc.NewCursor(f.Body).String(); reason != "malformed join" {
		t.Fatalf("reason %q", reason)
	}
	if h.out.counts["bad_join"] != 1 || len(h.sessions) != 0 {
		t.Fatalf("counts %v sessions %d", h.out.counts, len(h.sessions))
	}
}

func TestDuplicateJoinIsRefusedAndLeavesTheSessionAlone(t *testing.T) {
	h, r := newTestHandler(t)
	first := &room.Session{}
	h.sessions[4] = first
	body, _ := ipc.NewFrame(ipc.Join, 4).String("ws://x").String("token").Finish()
	h.handle(ipc.Frame{Type: ipc.Join, Session: 4, Body: body[9:]})
	f := readFrame(t, r)
	if f.Type != ipc.JoinFailed || f.Session != 4 || ipc.NewCursor(f.Body).String() != "duplicate join" {
		t.Fatalf("got %+v", f)
	}
	if h.sessions[4] != first || h.out.counts["bad_join"] != 1 {
		t.Fatal("the first session must stay")
	}
}

func TestPingIsAnsweredWithItsNumber(t *testing.T) {
	h, r := newTestHandler(t)
	h.handle(ipc.Frame{Type: ipc.Ping, Session: 0, Body: binary.LittleEndian.AppendUint32(nil, 0xdeadbeef)})
	f := readFrame(t, r)
	if f.Type != ipc.Pong || f.Session != 0 {
		t.Fatalf("got %+v", f)
	}
	if seq := ipc.NewCursor(f.Body).U32(); seq != 0xdeadbeef {
		t.Fatalf("pong %#x, want 0xdeadbeef", seq)
	}
}

func TestShortPingIsCountedNotAnswered(t *testing.T) {
	h, r := newTestHandler(t)
	h.handle(ipc.Frame{Type: ipc.Ping, Session: 0, Body: []byte{1, 2}})
	h.handle(ipc.Frame{Type: ipc.Leave, Session: 5})
	if f := readFrame(t, r); f.Type != ipc.Left {
		t.Fatalf("the short ping was answered: %+v", f)
	}
	if h.out.counts["bad_ping"] != 1 {
		t.Fatalf("counts %v", h.out.counts)
	}
}

// A length of 0xffffffff wrapped past the bound (ipc.ReadFrame) and the process waited for
// ~4 GiB of body instead of exiting with code 3.
func TestCorruptLengthExitsWithCode3(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "VOICE_MEDIA_RUN_MAIN=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	bad := binary.LittleEndian.AppendUint32(nil, 0xffffffff)
	bad = append(bad, ipc.Opus, 1, 0, 0, 0)
	if _, err := stdin.Write(bad); err != nil {
		t.Fatal(err)
	}
	// stdin stays open: the process must exit on its own.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 3 {
			t.Fatalf("want exit code 3, got %v", err)
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("still running 5 s after a corrupt length")
	}
	_ = stdin.Close()
}
