package room

import (
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/pion/webrtc/v4"

	"voicefleet/media/internal/ipc"
)

// The agent's audio tracks: which one is heard, and its RTP handed to the gateway.

// heardTrack is the track heard and its generation, which counts the times a track became
// heard in this session (a switch to a newer track, or back to an older one), wrapping at
// 16 bits. Every agent RTP frame carries it, so the gateway knows exactly where a track's
// packets begin instead of guessing from their sequence numbers. A reader checks its track
// against heard and takes the generation in one load: a frame it builds just before a
// switch and queues just after (after the new track's first frames) still carries the old
// generation, and the gateway drops it as the old track's.
type heardTrack struct {
	track      *webrtc.TrackRemote
	generation uint16
}

// subscribed reads a remote audio track until it ends. Only the newest track still
// subscribed is heard (its RTP goes to the gateway): LiveKit Agents publishes a new track
// on each reconnect of its room and may keep the old one (room_io's _on_reconnected), and
// a republished track's subscription can come before the old track's end. Reading only
// the first track and ignoring the rest lost the agent's voice for the rest of the
// session whenever the first then ended or fell silent. When the track heard ends, the
// newest one left is heard again. A track not heard is still read, and its packets
// dropped (counted): left in pion's buffer, they would reach the device late once heard.
func (s *Session) subscribed(track *webrtc.TrackRemote) {
	if track.Kind() != webrtc.RTPCodecTypeAudio {
		return
	}
	// Only plain Opus is registered (pion's defaults: no RED), so the server sends the
	// primary encoding; anything else would not decode in the gateway.
	if !strings.EqualFold(track.Codec().MimeType, webrtc.MimeTypeOpus) {
		s.out.Count("agent_track_not_opus")
		return
	}
	if !s.trackAdded(track) {
		return
	}
	go func() {
		defer s.readers.Done()
		defer s.trackEnded(track)
		readTrack(track, func(sequence uint16, timestamp uint32, payload []byte) {
			s.forward(track, sequence, timestamp, payload)
		}, s.out)
	}()
}

// maxUnreadableInRow is how many reads of a track may fail in a row before its reading
// ends. A failed read is one packet pion could not read, and the next one may read; a read
// that fails at once for good (the track's stream gone) must not spin.
const maxUnreadableInRow = 50

// counter counts a drop or oddity by its reason (Out's Count).
type counter interface{ Count(reason string) }

// readTrack reads a track's RTP until the track ends (io.EOF: it, or the connection,
// closed), handing each packet to forward. A packet pion cannot read (its payload type
// not negotiated, its header malformed) is counted and skipped: ending the reading there,
// as it once did, lost the agent's voice for the rest of the session, uncounted.
func readTrack(track *webrtc.TrackRemote, forward func(sequence uint16, timestamp uint32, payload []byte), counts counter) {
	inRow := 0
	for {
		pkt, _, err := track.ReadRTP()
		if err == nil {
			inRow = 0
			forward(pkt.SequenceNumber, pkt.Timestamp, pkt.Payload)
			continue
		}
		if errors.Is(err, io.EOF) {
			return
		}
		counts.Count("agent_rtp_unreadable")
		if inRow++; inRow >= maxUnreadableInRow {
			counts.Count("agent_track_unreadable")
			return
		}
	}
}

// trackAdded makes a newly subscribed track the one heard, and counts it as a reader of
// the session; false when the session has left (nothing is read then).
func (s *Session) trackAdded(track *webrtc.TrackRemote) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.left {
		return false
	}
	if len(s.tracks) > 0 {
		// The rtc-node transport counts the same.
		s.out.Count("agent_track_switched")
	}
	s.tracks = append(s.tracks, track)
	s.hear(track)
	s.readers.Add(1)
	return true
}

// hear makes a track the one heard under the next generation (nil: none is heard). Called
// under mu.
func (s *Session) hear(track *webrtc.TrackRemote) {
	if track == nil {
		s.heard.Store(nil)
		return
	}
	s.generation++
	s.heard.Store(&heardTrack{track: track, generation: s.generation})
}

// forward sends a packet of a track to the gateway if that track is heard, with the
// generation it is heard under (one load: see heardTrack).
func (s *Session) forward(track *webrtc.TrackRemote, sequence uint16, timestamp uint32, payload []byte) {
	h := s.heard.Load()
	if h == nil || h.track != track {
		s.out.Count("agent_rtp_not_heard")
		return
	}
	f, err := agentRTPFrame(s.id, h.generation, sequence, timestamp, payload)
	if err != nil {
		s.out.Count("agent_rtp_too_large")
		return
	}
	if !s.out.Audio(f) {
		s.out.Count("agent_rtp_pipe_full")
	}
}

// agentRTPFrame is an AgentRTP frame: u16 generation, u16 sequence, u32 timestamp, payload.
func agentRTPFrame(session uint32, generation, sequence uint16, timestamp uint32, payload []byte) ([]byte, error) {
	return ipc.NewFrame(ipc.AgentRTP, session).U16(generation).U16(sequence).U32(timestamp).Bytes(payload).Finish()
}

// trackEnded forgets a track whose reading ended; if it was the one heard, the newest
// one left is heard from now on.
func (s *Session) trackEnded(track *webrtc.TrackRemote) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.tracks, track)
	if i < 0 {
		return
	}
	s.tracks = slices.Delete(s.tracks, i, i+1)
	if h := s.heard.Load(); h == nil || h.track != track {
		return
	}
	if n := len(s.tracks); n > 0 {
		s.hear(s.tracks[n-1])
		if !s.left {
			s.out.Count("agent_track_back")
		}
	} else {
		s.hear(nil)
	}
}
