package room

import (
	"io"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	lksdk "github.com/livekit/server-sdk-go/v2"
)

// boundTrack is the context a peer connection gives a track when it is negotiated; here
// it only records the RTP the track writes.
type boundTrack struct{ written []rtp.Header }

func (b *boundTrack) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		PayloadType:        111,
	}}
}
func (b *boundTrack) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (b *boundTrack) SSRC() webrtc.SSRC                                      { return 1234 }
func (b *boundTrack) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (b *boundTrack) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (b *boundTrack) WriteStream() webrtc.TrackLocalWriter                   { return b }
func (b *boundTrack) ID() string                                             { return "test" }
func (b *boundTrack) RTCPReader() interceptor.RTCPReader                     { return noRTCP{} }
func (b *boundTrack) WriteRTP(h *rtp.Header, _ []byte) (int, error) {
	b.written = append(b.written, *h)
	return 0, nil
}
func (b *boundTrack) Write(p []byte) (int, error) { return len(p), nil }

// noRTCP is a closed RTCP pipe: the track's RTCP reader ends at once.
type noRTCP struct{}

func (noRTCP) Read([]byte, interceptor.Attributes) (int, interceptor.Attributes, error) {
	return 0, nil, io.EOF
}

// sessionWithTrack is a joined session whose track writes to a recorder.
func sessionWithTrack(t *testing.T) (*Session, *boundTrack, *recordingOut) {
	t.Helper()
	track, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	bound := &boundTrack{}
	if _, err := track.Bind(bound); err != nil {
		t.Fatal(err)
	}
	out := newRecordingOut()
	return &Session{id: 1, out: out, track: track}, bound, out
}

// The RTP timestamps the gateway sets (upstream-clock.ts) reach the track as steps: one
// frame between consecutive packets, the pause's length across a pause, and across the
// 32-bit wrap as anywhere else. A step of more than 2^31 ticks (a pause of 12.4 h) the SDK
// takes for a packet from the past and refuses, and every later one with it until the
// timestamps come round again: the gateway never asks for a step of 2^31 or more.
func TestOpusTimestampStepsReachTheTrack(t *testing.T) {
	s, bound, out := sessionWithTrack(t)
	payload := []byte{0xf8, 0xff, 0xfe}
	start := uint32(1<<32 - 2*2880)
	for _, ts := range []uint32{start, start + 2880, start + 2*2880 + 1, start + 2*2880 + 1 + 17*2880} {
		s.WriteOpus(ts, 60, payload)
	}
	if len(out.counts) != 0 {
		t.Fatalf("a write was refused: %q", <-out.counts)
	}
	if len(bound.written) != 4 {
		t.Fatalf("%d packets written, want 4", len(bound.written))
	}
	for i, want := range []uint32{2880, 2881, 17 * 2880} {
		if got := bound.written[i+1].Timestamp - bound.written[i].Timestamp; got != want {
			t.Errorf("step %d: %d ticks, want %d", i, got, want)
		}
	}
	last := start + 2*2880 + 1 + 17*2880
	longest := last + 1<<31 - 1
	s.WriteOpus(longest, 60, payload)
	s.WriteOpus(longest+1<<31+1, 60, payload)
	s.WriteOpus(longest+1<<31+1+2880, 60, payload)
	if len(bound.written) != 5 {
		t.Fatalf("%d packets written, want 5 (a step of 2^31-1 taken; one of 2^31+1 refused, and the next frame too)", len(bound.written))
	}
	if got := bound.written[4].Timestamp - bound.written[3].Timestamp; got != 1<<31-1 {
		t.Errorf("longest step: %d ticks, want %d", got, uint32(1<<31-1))
	}
	for range 2 {
		if reason := <-out.counts; reason != "opus_write_failed" {
			t.Fatalf("counted %q, want opus_write_failed", reason)
		}
	}
}
