// Package ipc is the framing between the gateway and its media process: one record per
// frame, over the child's stdin (gateway to media) and stdout (media to gateway).
//
//	frame := u32 LE length of what follows | u8 type | u32 LE session | body
//
// Strings in a body are u16 LE length + UTF-8; maps are u16 count + string pairs; audio
// payloads are the rest of the body, never JSON. docs/media-process.md lists every type;
// gateway/src/agent/livekit/media/ipc-codec.ts is the other end and must match.
package ipc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// MaxFrame bounds one frame (length field included); a larger length means the stream is
// corrupt and cannot be resynchronised.
const MaxFrame = 64 * 1024

const headerLen = 4 + 1 + 4

// Gateway to media process.
const (
	Join  byte = 0x01 // url string, token string
	Opus  byte = 0x02 // u32 RTP timestamp, u16 duration ms, payload
	Data  byte = 0x03 // topic string, payload
	Leave byte = 0x04 // (empty)
	Ping  byte = 0x05 // u32 number (session 0): answered with Pong from the frame loop
)

// Media process to gateway.
const (
	Ready             byte = 0x80 // version string (session 0)
	Joined            byte = 0x81 // local identity string
	JoinFailed        byte = 0x82 // reason string
	Disconnected      byte = 0x83 // reason string
	ParticipantJoined byte = 0x84 // identity, u8 kind, attributes map
	ParticipantLeft   byte = 0x85 // identity
	Attributes        byte = 0x86 // identity, attributes map
	DataIn            byte = 0x87 // topic, from, payload
	Text              byte = 0x88 // stream id, topic, from, attributes map, u8 end (TextOpen...), text
	AgentRTP          byte = 0x89 // u16 track generation, u16 sequence, u32 timestamp, payload
	Left              byte = 0x8a // (empty): everything of the session is released
	Counters          byte = 0x8b // u16 count, then (name string, u32 delta) pairs (session 0)
	Pong              byte = 0x8c // u32 number of the Ping answered (session 0)
)

// How a Text frame stands in its stream (its u8 after the attributes).
const (
	TextOpen    byte = 0 // more of the stream follows
	TextDone    byte = 1 // the stream ended normally: its text is whole
	TextAborted byte = 2 // the stream failed before its end: its text is not whole
)

// Frame is one decoded record.
type Frame struct {
	Type    byte
	Session uint32
	Body    []byte
}

// ErrFrameSize means the length field is out of range: the stream is corrupt.
var ErrFrameSize = errors.New("ipc: frame length out of range")

// ReadFrame reads one frame. The body is a fresh slice the caller may keep.
func ReadFrame(r *bufio.Reader) (Frame, error) {
	var head [headerLen]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return Frame{}, err
	}
	n := binary.LittleEndian.Uint32(head[0:4])
	// n > MaxFrame-4, not n+4 > MaxFrame: n is a uint32, and n+4 wraps to 0..3 for the
	// four largest lengths, which would pass and allocate ~4 GiB.
	if n < headerLen-4 || n > MaxFrame-4 {
		return Frame{}, fmt.Errorf("%w: %d", ErrFrameSize, n)
	}
	body := make([]byte, int(n)-(headerLen-4))
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return Frame{Type: head[4], Session: binary.LittleEndian.Uint32(head[5:9]), Body: body}, nil
}

// Builder assembles one frame.
type Builder struct{ buf []byte }

// NewFrame starts a frame of the given type for a session.
func NewFrame(typ byte, session uint32) *Builder {
	b := &Builder{buf: make([]byte, headerLen, 64)}
	b.buf[4] = typ
	binary.LittleEndian.PutUint32(b.buf[5:9], session)
	return b
}

func (b *Builder) U8(v byte) *Builder { b.buf = append(b.buf, v); return b }
func (b *Builder) U16(v uint16) *Builder {
	b.buf = binary.LittleEndian.AppendUint16(b.buf, v)
	return b
}
func (b *Builder) U32(v uint32) *Builder {
	b.buf = binary.LittleEndian.AppendUint32(b.buf, v)
	return b
}

// String writes a u16-length string, cut at 65535 bytes.
func (b *Builder) String(s string) *Builder {
	if len(s) > 0xffff {
		s = s[:0xffff]
	}
	b.U16(uint16(len(s)))
	b.buf = append(b.buf, s...)
	return b
}

// Map writes the pairs sorted by key (stable bytes for equal maps).
func (b *Builder) Map(m map[string]string) *Builder {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 0xffff {
		keys = keys[:0xffff]
	}
	b.U16(uint16(len(keys)))
	for _, k := range keys {
		b.String(k).String(m[k])
	}
	return b
}

func (b *Builder) Bytes(p []byte) *Builder { b.buf = append(b.buf, p...); return b }

// Finish fills in the length and returns the frame, or an error when it exceeds MaxFrame.
func (b *Builder) Finish() ([]byte, error) {
	if len(b.buf) > MaxFrame {
		return nil, fmt.Errorf("%w: %d", ErrFrameSize, len(b.buf))
	}
	binary.LittleEndian.PutUint32(b.buf[0:4], uint32(len(b.buf)-4))
	return b.buf, nil
}

// Cursor reads a body field by field; the first short read sets Err and later reads
// return zero values.
type Cursor struct {
	b   []byte
	Err error
}

func NewCursor(body []byte) *Cursor { return &Cursor{b: body} }

var errShort = errors.New("ipc: body too short")

func (c *Cursor) take(n int) []byte {
	if c.Err != nil {
		return nil
	}
	if len(c.b) < n {
		c.Err = errShort
		return nil
	}
	p := c.b[:n]
	c.b = c.b[n:]
	return p
}

func (c *Cursor) U8() byte {
	if p := c.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (c *Cursor) U16() uint16 {
	if p := c.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (c *Cursor) U32() uint32 {
	if p := c.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (c *Cursor) String() string { return string(c.take(int(c.U16()))) }

// Rest returns what is left of the body.
func (c *Cursor) Rest() []byte {
	if c.Err != nil {
		return nil
	}
	p := c.b
	c.b = nil
	return p
}
