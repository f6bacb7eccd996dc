package room

import (
	"io"
	"unicode/utf8"

	lksdk "github.com/livekit/server-sdk-go/v2"

	"voicefleet/media/internal/ipc"
)

// TextTopics are the text-stream topics passed through (the Go SDK only reads topics it
// has a handler for).
var TextTopics = []string{"lk.transcription", "lk.chat"}

// textStream passes a text stream through as chunks of whole UTF-8 characters, then one
// frame that ends it: TextDone, or TextAborted without the text still held when the stream
// failed (the patched SDK fails it as LiveKit's Rust SDK does: a missed chunk, a length
// off the header's, a trailer with a reason), since the gateway drops a failed stream's
// text as the rtc-node transport does. It counts as a reader, so Left follows its last
// frame; the room's disconnect closes the SDK's readers, which ends it. It reads only the
// header's attributes: the patched SDK never writes that map after the header
// (docs/media-process.md, "The patched SDK").
func (s *Session) textStream(reader *lksdk.TextStreamReader, from string) {
	s.mu.Lock()
	if s.left {
		s.mu.Unlock()
		return
	}
	s.readers.Add(1)
	s.mu.Unlock()
	defer s.readers.Done()
	info := reader.Info
	attrs := info.Attributes
	send := func(end byte, text []byte) {
		s.control(ipc.NewFrame(ipc.Text, s.id).String(info.Id).String(info.Topic).String(from).
			Map(attrs).U8(end).Bytes(text))
	}
	buf := make([]byte, 4096)
	var pending []byte
	for {
		n, err := reader.Read(buf)
		pending = append(pending, buf[:n]...)
		switch {
		case err == nil:
			if cut := completeRunes(pending); cut > 0 {
				send(ipc.TextOpen, pending[:cut])
				pending = append(pending[:0], pending[cut:]...)
			}
		case err == io.EOF:
			send(ipc.TextDone, pending)
			return
		default:
			s.out.Count("text_stream_error")
			send(ipc.TextAborted, nil)
			return
		}
	}
}

// completeRunes is the length of p without an incomplete UTF-8 character at its end.
func completeRunes(p []byte) int {
	for i := 1; i <= 3 && i <= len(p); i++ {
		if utf8.RuneStart(p[len(p)-i]) {
			if !utf8.FullRune(p[len(p)-i:]) {
				return len(p) - i
			}
			break
		}
	}
	return len(p)
}
