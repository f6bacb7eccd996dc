package room

import (
	"fmt"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"

	"voicefleet/media/internal/ipc"
)

// recordingOut keeps a session's control frames, audio frames and counts for the test to
// read.
type recordingOut struct {
	frames chan []byte
	audio  chan []byte
	counts chan string
}

func newRecordingOut() *recordingOut {
	return &recordingOut{frames: make(chan []byte, 1024), audio: make(chan []byte, 1024), counts: make(chan string, 1024)}
}

func (o *recordingOut) Control(frame []byte)    { o.frames <- frame }
func (o *recordingOut) Audio(frame []byte) bool { o.audio <- frame; return true }
func (o *recordingOut) Count(reason string)     { o.counts <- reason }

// textFrame is a decoded Text frame.
type textFrame struct {
	streamID, topic, from string
	attributes            map[string]string
	end                   byte
	text                  string
}

func (f textFrame) last() bool { return f.end != ipc.TextOpen }

func decodeText(t *testing.T, frame []byte) textFrame {
	t.Helper()
	if len(frame) < 9 || frame[4] != ipc.Text {
		t.Fatalf("not a Text frame: % x", frame)
	}
	c := ipc.NewCursor(frame[9:])
	f := textFrame{streamID: c.String(), topic: c.String(), from: c.String(), attributes: map[string]string{}}
	for n := c.U16(); n > 0; n-- {
		k := c.String()
		f.attributes[k] = c.String()
	}
	f.end = c.U8()
	f.text = string(c.Rest())
	if c.Err != nil {
		t.Fatalf("Text frame cut short: %v", c.Err)
	}
	return f
}

// streamOf reads the session's Text frames up to the stream's last one.
func streamOf(t *testing.T, out *recordingOut) []textFrame {
	t.Helper()
	var got []textFrame
	for {
		select {
		case frame := <-out.frames:
			f := decodeText(t, frame)
			got = append(got, f)
			if f.last() {
				return got
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the stream's last frame never came (%d frames)", len(got))
		}
	}
}

// A room that is never connected: the SDK's data-stream entry points are called as its
// data channel would call them, on one goroutine, in the order the packets arrived.
func roomWithTextHandler(s *Session) *lksdk.Room {
	r := lksdk.NewRoom(lksdk.NewRoomCallback())
	for _, topic := range TextTopics {
		_ = r.RegisterTextStreamHandler(topic, s.textStream)
	}
	return r
}

func textHeader(id string, attributes map[string]string) *livekit.DataStream_Header {
	return &livekit.DataStream_Header{
		StreamId:      id,
		Topic:         "lk.transcription",
		Attributes:    attributes,
		ContentHeader: &livekit.DataStream_Header_TextHeader{TextHeader: &livekit.DataStream_TextHeader{}},
	}
}

// LiveKit Agents closes each segment with a trailer carrying lk.transcription_final; a
// header without attributes made the upstream SDK write into a nil map and panic on the
// data channel's goroutine, taking the whole media process down.
func TestATrailerWithAttributesAfterAHeaderWithoutIsPassedThrough(t *testing.T) {
	out := newRecordingOut()
	s := &Session{id: 7, out: out}
	r := roomWithTextHandler(s)

	r.OnStreamHeader(textHeader("s1", nil), "agent-1")
	r.OnStreamChunk(&livekit.DataStream_Chunk{StreamId: "s1", Content: []byte("hello")})
	r.OnStreamTrailer(&livekit.DataStream_Trailer{StreamId: "s1", Attributes: map[string]string{"lk.transcription_final": "true"}})

	text := ""
	for _, f := range streamOf(t, out) {
		if f.streamID != "s1" || f.topic != "lk.transcription" || f.from != "agent-1" {
			t.Fatalf("frame of another stream: %+v", f)
		}
		text += f.text
	}
	if text != "hello" {
		t.Fatalf("text %q, want %q", text, "hello")
	}
}

// The handler sends the header's attributes with every chunk while the data channel's
// goroutine goes on to the trailer; upstream wrote the trailer's attributes into that same
// map (under -race: a data race; without it, at worst a fatal concurrent map write).
func TestEveryChunkCarriesTheHeadersAttributesWhileTheTrailerArrives(t *testing.T) {
	out := newRecordingOut()
	s := &Session{id: 7, out: out}
	r := roomWithTextHandler(s)
	header := map[string]string{"lk.segment_id": "SG_1", "lk.transcription_final": "false"}

	r.OnStreamHeader(textHeader("s2", header), "agent-1")
	for i := range 50 {
		r.OnStreamChunk(&livekit.DataStream_Chunk{StreamId: "s2", ChunkIndex: uint64(i), Content: fmt.Appendf(nil, "w%d ", i)})
	}
	r.OnStreamTrailer(&livekit.DataStream_Trailer{StreamId: "s2", Attributes: map[string]string{"lk.transcription_final": "true"}})

	for _, f := range streamOf(t, out) {
		if f.attributes["lk.segment_id"] != "SG_1" || f.attributes["lk.transcription_final"] != "false" {
			t.Fatalf("a chunk's attributes are not the header's: %v", f.attributes)
		}
	}
}

// textOf is the text of a stream's frames and how its last frame ended it.
func textOf(frames []textFrame) (string, byte) {
	text := ""
	for _, f := range frames {
		text += f.text
	}
	return text, frames[len(frames)-1].end
}

func chunk(id string, index uint64, content string) *livekit.DataStream_Chunk {
	return &livekit.DataStream_Chunk{StreamId: id, ChunkIndex: index, Content: []byte(content)}
}

func TestAStreamThatEndsNormallyIsDoneWithAllItsText(t *testing.T) {
	out := newRecordingOut()
	r := roomWithTextHandler(&Session{id: 7, out: out})

	r.OnStreamHeader(textHeader("ok", nil), "agent-1")
	r.OnStreamChunk(chunk("ok", 0, "good "))
	r.OnStreamChunk(chunk("ok", 1, "morning"))
	r.OnStreamTrailer(&livekit.DataStream_Trailer{StreamId: "ok"})

	if text, end := textOf(streamOf(t, out)); text != "good morning" || end != ipc.TextDone {
		t.Fatalf("text %q end %d, want %q and TextDone", text, end, "good morning")
	}
}

// LiveKit's Rust SDK, under rtc-node and the agents' Python SDK, fails a stream whose
// sender ended it with a reason; the gateway then drops its text rather than show half a
// sentence as a whole one.
func TestAStreamEndedWithAReasonIsAbortedWithoutItsHeldText(t *testing.T) {
	out := newRecordingOut()
	r := roomWithTextHandler(&Session{id: 7, out: out})

	r.OnStreamHeader(textHeader("cut", nil), "agent-1")
	r.OnStreamChunk(chunk("cut", 0, "half a sent"))
	r.OnStreamTrailer(&livekit.DataStream_Trailer{StreamId: "cut", Reason: "interrupted"})

	frames := streamOf(t, out)
	if _, end := textOf(frames); end != ipc.TextAborted {
		t.Fatalf("end %d, want TextAborted", end)
	}
	if last := frames[len(frames)-1]; last.text != "" {
		t.Fatalf("the aborting frame carries text %q", last.text)
	}
}

func TestAStreamWithAMissedChunkIsAbortedAndItsLaterPacketsIgnored(t *testing.T) {
	out := newRecordingOut()
	r := roomWithTextHandler(&Session{id: 7, out: out})

	r.OnStreamHeader(textHeader("gap", nil), "agent-1")
	r.OnStreamChunk(chunk("gap", 0, "one "))
	r.OnStreamChunk(chunk("gap", 2, "three"))
	r.OnStreamChunk(chunk("gap", 3, "four"))
	r.OnStreamTrailer(&livekit.DataStream_Trailer{StreamId: "gap"})

	if _, end := textOf(streamOf(t, out)); end != ipc.TextAborted {
		t.Fatalf("end %d, want TextAborted", end)
	}
	select {
	case frame := <-out.frames:
		t.Fatalf("a frame after the stream was aborted: %+v", decodeText(t, frame))
	case <-time.After(100 * time.Millisecond):
	}
}

// A stream whose text is not the length its header announced failed in transit; LiveKit's
// Rust SDK fails it (length exceeded as the chunk arrives, incomplete at the trailer).
func TestAStreamWhoseLengthIsNotItsHeadersIsAborted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		total   uint64
		chunks  []string
		trailer bool
	}{
		{name: "longer", total: 4, chunks: []string{"four", "five!"}},
		{name: "shorter", total: 10, chunks: []string{"four"}, trailer: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := newRecordingOut()
			r := roomWithTextHandler(&Session{id: 7, out: out})
			header := textHeader(tc.name, nil)
			header.TotalLength = &tc.total

			r.OnStreamHeader(header, "agent-1")
			for i, text := range tc.chunks {
				r.OnStreamChunk(chunk(tc.name, uint64(i), text))
			}
			if tc.trailer {
				r.OnStreamTrailer(&livekit.DataStream_Trailer{StreamId: tc.name})
			}

			if _, end := textOf(streamOf(t, out)); end != ipc.TextAborted {
				t.Fatalf("end %d, want TextAborted", end)
			}
		})
	}
}

// sessionInRoom is a session joined to a room that is never connected, as Join leaves it,
// so that Leave runs its whole course (disconnect, wait for the readers, Left).
func sessionInRoom(out Out) (*Session, *lksdk.Room) {
	s := &Session{id: 7, out: out, cancel: func() {}, joinDone: make(chan struct{}),
		data: make(chan dataPacket, dataQueue), dataDone: make(chan struct{})}
	close(s.joinDone)
	go s.sendData()
	r := roomWithTextHandler(s)
	s.room = r
	return s, r
}

// waitLeft reads the session's frames until Left, returning the Text frames before it.
func waitLeft(t *testing.T, out *recordingOut, within time.Duration) []textFrame {
	t.Helper()
	var got []textFrame
	deadline := time.After(within)
	for {
		select {
		case frame := <-out.frames:
			if frame[4] == ipc.Left {
				return got
			}
			got = append(got, decodeText(t, frame))
		case <-deadline:
			t.Fatalf("no Left within %v (%d text frames before)", within, len(got))
		}
	}
}

// A second header for a stream already open: LiveKit's Rust SDK ignores it and the open
// stream goes on (manager.rs, handle_header: "already open"). Upstream Go stored a new
// reader under the same id, so the first reader left the SDK's map while its handler was
// still reading it: neither the trailer nor the room's disconnect ever closed it, and
// since a handler counts as a reader of its session, Leave never sent Left.
func TestASecondHeaderForAnOpenStreamIsIgnored(t *testing.T) {
	out := newRecordingOut()
	s, r := sessionInRoom(out)

	r.OnStreamHeader(textHeader("twice", nil), "agent-1")
	r.OnStreamChunk(chunk("twice", 0, "one "))
	r.OnStreamHeader(textHeader("twice", nil), "agent-1")
	r.OnStreamChunk(chunk("twice", 1, "two"))
	r.OnStreamTrailer(&livekit.DataStream_Trailer{StreamId: "twice"})

	if text, end := textOf(streamOf(t, out)); text != "one two" || end != ipc.TextDone {
		t.Fatalf("text %q end %d, want %q and TextDone", text, end, "one two")
	}
	go s.Leave()
	if frames := waitLeft(t, out, 3*time.Second); len(frames) != 0 {
		t.Fatalf("text frames after the stream ended: %+v", frames)
	}
}

func TestCompleteRunesKeepsAnIncompleteCharacterBack(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{"abc", 3},
		{"h\xc3\xa9", 3},         // é complete
		{"h\xc3", 1},             // é cut after its first byte
		{"\xe2\x82", 0},          // € cut after two of three bytes
		{"a\xf0\x9f\x98\x80", 5}, // an emoji, complete
		{"a\xf0\x9f\x98", 1},     // the emoji cut
		{"", 0},
	}
	for _, c := range cases {
		if got := completeRunes([]byte(c.in)); got != c.want {
			t.Errorf("completeRunes(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}
