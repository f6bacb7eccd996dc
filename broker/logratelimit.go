package main

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// rateLimitedHandler passes at most `burst` log lines of one kind at once and `perSecond`
// a second after that; the next line that passes after a silence carries `suppressed`, the
// number of lines of its kind left out. A kind is the message and its "event" attribute
// (not the client or remote, which an attacker chooses), so a flood of refused CONNECTs
// costs a few lines a second, not one line each.
type rateLimitedHandler struct {
	inner  slog.Handler
	shared *logLimiter
	event  string // an "event" attribute added by With, if any
}

type logLimiter struct {
	perSecond float64
	burst     float64
	now       func() time.Time

	mu    sync.Mutex
	kinds map[string]*logBucket
}

type logBucket struct {
	tokens     float64
	at         time.Time
	suppressed int64
}

// maxLogKinds bounds the limiter's memory; kinds beyond it share one bucket.
const maxLogKinds = 1024

func newRateLimitedHandler(inner slog.Handler, perSecond, burst float64, now func() time.Time) *rateLimitedHandler {
	return &rateLimitedHandler{inner: inner, shared: &logLimiter{
		perSecond: perSecond, burst: burst, now: now, kinds: map[string]*logBucket{},
	}}
}

func (h *rateLimitedHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *rateLimitedHandler) Handle(ctx context.Context, r slog.Record) error {
	event := h.event
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "event" {
			event = a.Value.String()
			return false
		}
		return true
	})
	pass, suppressed := h.shared.take(r.Level.String() + "|" + r.Message + "|" + event)
	if !pass {
		return nil
	}
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int64("suppressed", suppressed))
	}
	return h.inner.Handle(ctx, r)
}

func (h *rateLimitedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	event := h.event
	for _, a := range attrs {
		if a.Key == "event" {
			event = a.Value.String()
		}
	}
	return &rateLimitedHandler{inner: h.inner.WithAttrs(attrs), shared: h.shared, event: event}
}

func (h *rateLimitedHandler) WithGroup(name string) slog.Handler {
	return &rateLimitedHandler{inner: h.inner.WithGroup(name), shared: h.shared, event: h.event}
}

// take spends a token of `kind`; it returns whether the line passes and, if it does, how
// many lines of its kind were suppressed before it.
func (l *logLimiter) take(kind string) (bool, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.kinds[kind]
	if !ok {
		if len(l.kinds) >= maxLogKinds {
			kind = "\x00overflow"
			b = l.kinds[kind]
		}
		if b == nil {
			b = &logBucket{tokens: l.burst, at: now}
			l.kinds[kind] = b
		}
	}
	if elapsed := now.Sub(b.at).Seconds(); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed*l.perSecond)
	}
	b.at = now
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	s := b.suppressed
	b.suppressed = 0
	return true, s
}
