// voice-media is the gateway's media process: one per gateway instance, its child. It
// reads IPC frames on stdin (join, device Opus, data, leave) and writes the rooms' events
// and the agents' RTP on stdout. It exits when stdin closes or its parent dies.
//
// docs/media-process.md describes the framing, the process model and what happens on
// failure.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	protoLogger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"

	"voicefleet/media/internal/ipc"
	"voicefleet/media/internal/room"
)

// The framing this binary speaks; the gateway checks it (ipc-codec.ts, MEDIA_PROTOCOL_VERSION):
// change both with any change to the framing.
const version = "voice-media 4"

func main() {
	// Die with the gateway even if it is killed with SIGKILL (stdin EOF covers the rest).
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0)
	if os.Getppid() == 1 {
		os.Exit(0)
	}
	// The SDK logs every reconnect and ICE detail; the gateway gets what matters as frames.
	lksdk.SetLogger(protoLogger.LogRLogger(logr.Discard()))

	stdin, stdout := pollable(0, "stdin"), pollable(1, "stdout")
	out := newWriter(stdout, 8192)
	h := &handler{out: out, sessions: map[uint32]*room.Session{}}
	out.control0(ipc.NewFrame(ipc.Ready, 0).String(version))
	go out.reportCounters(time.Second)

	err := h.readLoop(bufio.NewReaderSize(stdin, 64*1024))
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(os.Stderr, "voice-media: %v\n", err)
	}
	h.leaveAll(3 * time.Second)
	out.close()
	if err != nil && !errors.Is(err, io.EOF) {
		os.Exit(3)
	}
}

// pollable returns the pipe at fd in non-blocking mode, so reads and writes wait in Go's
// network poller. A blocking pipe (what the gateway hands over) holds an OS thread in
// read(2)/write(2) while it waits, and the runtime hands that thread's P to another thread
// meanwhile. No separate gain was measured (docs/performance.md); it is the runtime's
// cheaper path for a pipe that is mostly waiting.
func pollable(fd int, name string) *os.File {
	if err := syscall.SetNonblock(fd, true); err != nil {
		fmt.Fprintf(os.Stderr, "voice-media: %s stays blocking: %v\n", name, err)
	}
	return os.NewFile(uintptr(fd), name)
}

type handler struct {
	out      *writer
	mu       sync.Mutex
	sessions map[uint32]*room.Session
}

func (h *handler) readLoop(r *bufio.Reader) error {
	for {
		f, err := ipc.ReadFrame(r)
		if err != nil {
			return err
		}
		h.handle(f)
	}
}

func (h *handler) handle(f ipc.Frame) {
	c := ipc.NewCursor(f.Body)
	h.mu.Lock()
	s := h.sessions[f.Session]
	h.mu.Unlock()
	switch f.Type {
	case ipc.Join:
		url, token := c.String(), c.String()
		if c.Err != nil || s != nil {
			// Refused at once, so the gateway does not wait out its join timeout. A duplicate
			// leaves the session that holds the number alone: a gateway that already has its
			// answer ignores this one.
			reason := "malformed join"
			if s != nil {
				reason = "duplicate join"
			}
			h.out.Count("bad_join")
			h.out.control0(ipc.NewFrame(ipc.JoinFailed, f.Session).String(reason))
			return
		}
		h.mu.Lock()
		h.sessions[f.Session] = room.Join(f.Session, h.out, url, token)
		h.mu.Unlock()
	case ipc.Opus:
		ts, ms, payload := c.U32(), c.U16(), c.Rest()
		switch {
		case c.Err != nil || len(payload) == 0:
			h.out.Count("bad_opus")
		case s == nil:
			h.out.Count("opus_unknown_session")
		default:
			s.WriteOpus(ts, ms, payload)
		}
	case ipc.Data:
		topic, payload := c.String(), c.Rest()
		switch {
		case c.Err != nil:
			h.out.Count("bad_data")
		case s == nil:
			h.out.Count("data_unknown_session")
		default:
			s.SendData(topic, payload)
		}
	case ipc.Leave:
		if s == nil {
			// Already gone (or never joined): still confirm, so the gateway stops waiting.
			h.out.control0(ipc.NewFrame(ipc.Left, f.Session))
			return
		}
		h.mu.Lock()
		delete(h.sessions, f.Session)
		h.mu.Unlock()
		go s.Leave()
	case ipc.Ping:
		// Answered here, by the loop that handles every frame, so that a pong shows this
		// loop and both pipes alive: the gateway kills a child that stops answering
		// (media-liveness.ts).
		seq := c.U32()
		if c.Err != nil {
			h.out.Count("bad_ping")
			return
		}
		h.out.control0(ipc.NewFrame(ipc.Pong, 0).U32(seq))
	default:
		h.out.Count("unknown_type")
	}
}

// leaveAll disconnects every session, waiting at most limit.
func (h *handler) leaveAll(limit time.Duration) {
	h.mu.Lock()
	var wg sync.WaitGroup
	for id, s := range h.sessions {
		delete(h.sessions, id)
		wg.Add(1)
		go func() { defer wg.Done(); s.Leave() }()
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
	}
}
