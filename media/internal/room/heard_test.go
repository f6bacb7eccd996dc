package room

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/pion/webrtc/v4"

	"voicefleet/media/internal/ipc"
)

// agentPacket is a decoded AgentRTP frame.
type agentPacket struct {
	generation, sequence uint16
	timestamp            uint32
	payload              string
}

func decodeAgentRTP(t *testing.T, frame []byte) agentPacket {
	t.Helper()
	f, err := ipc.ReadFrame(bufio.NewReader(bytes.NewReader(frame)))
	if err != nil || f.Type != ipc.AgentRTP || f.Session != 7 {
		t.Fatalf("not an AgentRTP frame of session 7: %+v %v", f, err)
	}
	c := ipc.NewCursor(f.Body)
	p := agentPacket{generation: c.U16(), sequence: c.U16(), timestamp: c.U32(), payload: string(c.Rest())}
	if c.Err != nil {
		t.Fatalf("short AgentRTP body: % x", f.Body)
	}
	return p
}

func TestAnAgentRTPFrameCarriesGenerationSequenceTimestampAndPayload(t *testing.T) {
	f, err := agentRTPFrame(7, 0xfffe, 0xabcd, 0xfffffff0, []byte("opus"))
	if err != nil {
		t.Fatal(err)
	}
	want := agentPacket{generation: 0xfffe, sequence: 0xabcd, timestamp: 0xfffffff0, payload: "opus"}
	if got := decodeAgentRTP(t, f); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// Fixed-size fields first, little-endian, then the payload as it came.
	if !bytes.Equal(f[9:], []byte{0xfe, 0xff, 0xcd, 0xab, 0xf0, 0xff, 0xff, 0xff, 'o', 'p', 'u', 's'}) {
		t.Fatalf("body % x", f[9:])
	}
}

// forwarded sends one packet of a track through the session and returns the generation
// it went out under, or -1 with the count when it was not forwarded.
func forwarded(t *testing.T, s *Session, out *recordingOut, track *webrtc.TrackRemote) (int, string) {
	t.Helper()
	s.forward(track, 1, 2, []byte{3})
	select {
	case f := <-out.audio:
		return int(decodeAgentRTP(t, f).generation), ""
	case reason := <-out.counts:
		return -1, reason
	}
}

// countsOf drains the counts recorded so far.
func countsOf(out *recordingOut) []string {
	var got []string
	for {
		select {
		case reason := <-out.counts:
			got = append(got, reason)
		default:
			return got
		}
	}
}

// Each time the track heard changes, to a newer track or back to an older one, its packets
// go out under the next generation: the gateway restarts its reorder buffer exactly there,
// and drops a packet of an older generation queued after the switch.
func TestTheGenerationAdvancesWhenANewerTrackIsHeardAndWhenAnOlderOneIsHeardAgain(t *testing.T) {
	out := newRecordingOut()
	s := &Session{id: 7, out: out}
	first, second, third := &webrtc.TrackRemote{}, &webrtc.TrackRemote{}, &webrtc.TrackRemote{}

	s.trackAdded(first)
	if g, _ := forwarded(t, s, out, first); g != 1 {
		t.Fatalf("the first track heard: generation %d, want 1", g)
	}
	s.trackAdded(second)
	if got := countsOf(out); len(got) != 1 || got[0] != "agent_track_switched" {
		t.Fatalf("a newer track subscribed: counts %v, want [agent_track_switched]", got)
	}
	if g, reason := forwarded(t, s, out, first); g != -1 || reason != "agent_rtp_not_heard" {
		t.Fatalf("the first track once the second is heard: generation %d, count %q", g, reason)
	}
	if g, _ := forwarded(t, s, out, second); g != 2 {
		t.Fatalf("the second track: generation %d, want 2", g)
	}
	s.trackEnded(second)
	if got := countsOf(out); len(got) != 1 || got[0] != "agent_track_back" {
		t.Fatalf("the newer track ended: counts %v, want [agent_track_back]", got)
	}
	if g, _ := forwarded(t, s, out, first); g != 3 {
		t.Fatalf("the first track heard again: generation %d, want 3 (a new one: its sequence numbers moved on)", g)
	}
	s.trackAdded(third)
	countsOf(out)
	// A track that ends while another is heard changes nothing.
	s.trackEnded(first)
	if g, _ := forwarded(t, s, out, third); g != 4 {
		t.Fatalf("the third track after an older one ended: generation %d, want 4", g)
	}
	s.trackEnded(third)
	if g, reason := forwarded(t, s, out, third); g != -1 || reason != "agent_rtp_not_heard" {
		t.Fatalf("no track left: generation %d, count %q", g, reason)
	}
	s.trackAdded(first)
	if g, _ := forwarded(t, s, out, first); g != 5 {
		t.Fatalf("a track after none was left: generation %d, want 5", g)
	}
}

func TestTheGenerationWrapsAt16Bits(t *testing.T) {
	out := newRecordingOut()
	s := &Session{id: 7, out: out, generation: 0xffff}
	track := &webrtc.TrackRemote{}
	s.trackAdded(track)
	if g, _ := forwarded(t, s, out, track); g != 0 {
		t.Fatalf("generation %d after 0xffff, want 0", g)
	}
}
