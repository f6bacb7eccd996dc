package main

import (
	"bufio"
	"io"
	"sort"
	"sync"
	"time"

	"voicefleet/media/internal/ipc"
)

// writer owns stdout: one goroutine writes queued frames and flushes when the queue is
// empty. The queue is bounded: audio is dropped (and counted) when it is full, control
// frames wait for room, so an event is never lost.
type writer struct {
	queue  chan []byte
	done   chan struct{}
	mu     sync.Mutex
	counts map[string]uint32
	closed bool
}

func newWriter(w io.Writer, depth int) *writer {
	o := &writer{queue: make(chan []byte, depth), done: make(chan struct{}), counts: map[string]uint32{}}
	go o.run(bufio.NewWriterSize(w, 64*1024))
	return o
}

func (o *writer) run(bw *bufio.Writer) {
	defer close(o.done)
	for f := range o.queue {
		if f == nil {
			break // close(): the last frame
		}
		if _, err := bw.Write(f); err != nil {
			// The gateway is gone: keep draining so senders never block.
			continue
		}
		if len(o.queue) == 0 {
			_ = bw.Flush()
		}
	}
	_ = bw.Flush()
}

func (o *writer) Control(frame []byte) {
	o.mu.Lock()
	closed := o.closed
	o.mu.Unlock()
	if !closed {
		o.queue <- frame
	}
}

func (o *writer) Audio(frame []byte) bool {
	select {
	case o.queue <- frame:
		return true
	default:
		return false
	}
}

func (o *writer) Count(reason string) {
	o.mu.Lock()
	o.counts[reason]++
	o.mu.Unlock()
}

func (o *writer) control0(b *ipc.Builder) {
	if f, err := b.Finish(); err == nil {
		o.Control(f)
	}
}

// reportCounters sends the counts accumulated since the last report, when there are any.
func (o *writer) reportCounters(every time.Duration) {
	for range time.Tick(every) {
		o.mu.Lock()
		if o.closed || len(o.counts) == 0 {
			o.mu.Unlock()
			continue
		}
		counts := o.counts
		o.counts = map[string]uint32{}
		o.mu.Unlock()
		names := make([]string, 0, len(counts))
		for n := range counts {
			names = append(names, n)
		}
		sort.Strings(names)
		b := ipc.NewFrame(ipc.Counters, 0).U16(uint16(len(names)))
		for _, n := range names {
			b.String(n).U32(counts[n])
		}
		o.control0(b)
	}
}

func (o *writer) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	// Sessions that left in time have queued their last frames; anything later is lost
	// with the process anyway.
	// The queue is never closed (a late sender would panic); a nil frame ends the writer.
	o.queue <- nil
	select {
	case <-o.done:
	case <-time.After(time.Second):
	}
}
