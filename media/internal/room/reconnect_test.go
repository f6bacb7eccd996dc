package room

import (
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"

	"voicefleet/media/internal/ipc"
)

// expectLost waits for one Disconnected frame and one room_reconnect_abandoned count.
func expectLost(t *testing.T, out *recordingOut) {
	t.Helper()
	select {
	case f := <-out.frames:
		if f[4] != ipc.Disconnected {
			t.Fatalf("frame type %#x, want disconnected", f[4])
		}
	case <-time.After(2 * time.Second):
		t.Fatal("not reported lost")
	}
	select {
	case reason := <-out.counts:
		if reason != "room_reconnect_abandoned" {
			t.Fatalf("counted %q", reason)
		}
	case <-time.After(time.Second):
		t.Fatal("not counted")
	}
}

func expectNothing(t *testing.T, out *recordingOut, within time.Duration) {
	t.Helper()
	select {
	case f := <-out.frames:
		t.Fatalf("unexpected frame %#x", f[4])
	case reason := <-out.counts:
		t.Fatalf("unexpected count %q", reason)
	case <-time.After(within):
	}
}

func withGrace(t *testing.T, d time.Duration) {
	old := reconnectGrace
	reconnectGrace = d
	t.Cleanup(func() { reconnectGrace = old })
}

// Before, a session whose server went away stayed in its room, told nothing, while the SDK
// retried for about a minute (livekit-server-loss.test.ts).
func TestAReconnectNotBackWithinTheGraceIsReportedLostOnce(t *testing.T) {
	withGrace(t, 50*time.Millisecond)
	out := newRecordingOut()
	s := &Session{id: 3, out: out}
	s.reconnecting()
	expectLost(t, out)
	// The SDK's own disconnect when it gives up, later: not a second report.
	s.lost("signal closed")
	expectNothing(t, out, 100*time.Millisecond)
}

func TestAResumeWithinTheGraceKeepsTheSession(t *testing.T) {
	withGrace(t, 100*time.Millisecond)
	out := newRecordingOut()
	r := lksdk.NewRoom(lksdk.NewRoomCallback())
	s := &Session{id: 3, out: out, sid: r.LocalParticipant.SID()}
	s.reconnecting()
	s.reconnected(r)
	expectNothing(t, out, 300*time.Millisecond)
}

func TestAReconnectAsANewParticipantIsReportedLost(t *testing.T) {
	withGrace(t, time.Minute)
	out := newRecordingOut()
	s := &Session{id: 3, out: out, sid: "PA_before"}
	s.reconnecting()
	s.reconnected(lksdk.NewRoom(lksdk.NewRoomCallback()))
	expectLost(t, out)
}

// The SDK's full reconnect (OnRestarting) removes every remote participant, though none of
// them left. Passed up, the agent's leave came a second before the session was reported
// lost, and the gateway ended the session as the agent's own end (agent_ended) instead of
// a failure of its room.
func TestParticipantsRemovedByAFullReconnectAreNotPassedUpAsLeft(t *testing.T) {
	withGrace(t, 300*time.Millisecond)
	out := newRecordingOut()
	s := &Session{id: 7, out: out}
	r := s.newRoom()
	s.sid = "PA_self"
	info := &livekit.ParticipantInfo{Sid: "PA_1", Identity: "agent-1", Kind: livekit.ParticipantInfo_AGENT}
	r.OnParticipantUpdate([]*livekit.ParticipantInfo{info})
	if got := participantFrames(t, out, 200*time.Millisecond); len(got) != 1 || got[0] != "+agent-1" {
		t.Fatalf("joined frames %v", got)
	}
	r.OnRestarting()
	select {
	case f := <-out.frames:
		if f[4] != ipc.Disconnected {
			t.Fatalf("frame %#x before the session was reported lost, want disconnected", f[4])
		}
	case <-time.After(2 * time.Second):
		t.Fatal("not reported lost")
	}
}
