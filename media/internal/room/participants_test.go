package room

import (
	"runtime"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"voicefleet/media/internal/ipc"
)

// participantFrames reads the session's frames for a while: "+id" for ParticipantJoined,
// "-id" for ParticipantLeft, in the order they were sent.
func participantFrames(t *testing.T, out *recordingOut, within time.Duration) []string {
	t.Helper()
	var got []string
	deadline := time.After(within)
	for {
		select {
		case frame := <-out.frames:
			c := ipc.NewCursor(frame[9:])
			switch frame[4] {
			case ipc.ParticipantJoined:
				got = append(got, "+"+c.String())
			case ipc.ParticipantLeft:
				got = append(got, "-"+c.String())
			}
		case <-deadline:
			return got
		}
	}
}

// The SDK starts OnParticipantConnected and OnParticipantDisconnected each on a goroutine
// of its own (room.go, OnParticipantUpdate and OnParticipantDisconnect), so a participant
// that comes and goes in quick succession could be passed up as left, then joined. With
// one Go processor, as the media process runs, the later goroutine runs first: the gateway
// ignored the leave of an identity it did not know and then kept a gone agent for good.
func TestAParticipantThatComesAndGoesIsNeverLeftBeforeJoined(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for i := range 20 {
		out := newRecordingOut()
		s := &Session{id: 7, out: out}
		r := s.newRoom()
		info := &livekit.ParticipantInfo{Sid: "PA_1", Identity: "agent-1", Kind: livekit.ParticipantInfo_AGENT}
		r.OnParticipantUpdate([]*livekit.ParticipantInfo{info})
		gone := &livekit.ParticipantInfo{Sid: "PA_1", Identity: "agent-1", State: livekit.ParticipantInfo_DISCONNECTED}
		r.OnParticipantUpdate([]*livekit.ParticipantInfo{gone})

		got := participantFrames(t, out, 100*time.Millisecond)
		if len(got) != 0 && (len(got) != 2 || got[0] != "+agent-1" || got[1] != "-agent-1") {
			t.Fatalf("run %d: frames %v, want none or [+agent-1 -agent-1]", i, got)
		}
	}
}

// alternates reports whether frames for one identity alternate joined, left, joined...
// (what the gateway's set of participants can follow), and whether the identity is
// present after them.
func alternates(frames []string) (ok, present bool) {
	for _, f := range frames {
		if (f[0] == '+') == present {
			return false, present
		}
		present = !present
	}
	return true, present
}

// A participant that leaves and comes back under the same identity (a new participant to
// the SDK): the gateway must end up with it present, whatever order the SDK's goroutines
// run in.
func TestAParticipantThatComesBackUnderItsIdentityEndsUpPresent(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for i := range 20 {
		out := newRecordingOut()
		s := &Session{id: 7, out: out}
		r := s.newRoom()
		r.OnParticipantUpdate([]*livekit.ParticipantInfo{{Sid: "PA_1", Identity: "agent-1"}})
		if i%2 == 1 {
			// Let the first join through before it goes.
			participantFrames(t, out, 0)
			time.Sleep(10 * time.Millisecond)
		}
		r.OnParticipantUpdate([]*livekit.ParticipantInfo{{Sid: "PA_1", Identity: "agent-1", State: livekit.ParticipantInfo_DISCONNECTED}})
		r.OnParticipantUpdate([]*livekit.ParticipantInfo{{Sid: "PA_2", Identity: "agent-1"}})

		got := participantFrames(t, out, 100*time.Millisecond)
		if ok, present := alternates(got); !ok || !present {
			t.Fatalf("run %d: frames %v: the gateway would not see agent-1 present", i, got)
		}
	}
}
