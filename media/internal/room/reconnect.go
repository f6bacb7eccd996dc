package room

import (
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
)

// reconnectGrace is how long the SDK may take to get a session's room back after losing
// its signal connection before the session is reported lost. The SDK resumes a connection
// that dropped for a moment within that (the same participant, nothing lost), but against a
// server that is gone (killed, restarted) it retries for about a minute, with no event, and
// then rejoins as a new participant, possibly into a new, empty room: either way the agent's
// state is gone. The gateway ends such a session with goodbye so the device says hello again
// (docs/media-process.md, "Failure behaviour"); this keeps that under 2 s.
var reconnectGrace = time.Second

// reconnecting is the SDK's OnReconnecting: the session is reported lost unless the room
// is back within reconnectGrace.
func (s *Session) reconnecting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.left || s.reportedLost || s.reconnect != nil {
		return
	}
	s.reconnect = time.AfterFunc(reconnectGrace, func() {
		s.abandon("room not back within " + reconnectGrace.String() + " of losing its connection")
	})
}

// reconnected is the SDK's OnReconnected: a resume keeps the session; a full reconnect
// joined a new participant (a new SID), whose room and agent are not the session's any more.
func (s *Session) reconnected(r *lksdk.Room) {
	s.mu.Lock()
	if s.reconnect != nil {
		s.reconnect.Stop()
		s.reconnect = nil
	}
	sid := s.sid
	s.mu.Unlock()
	if sid != "" && r.LocalParticipant.SID() != sid {
		s.abandon("rejoined as a new participant")
	}
}

// abandon reports the session lost, once, and counts it.
func (s *Session) abandon(reason string) {
	if s.lost(reason) {
		s.out.Count("room_reconnect_abandoned")
	}
}
