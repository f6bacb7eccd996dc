// Package room holds one LiveKit participant per device session: it joins with the token
// the gateway minted, publishes the device's Opus as it came, and hands back the agent's
// RTP and the room's events as IPC frames. It decides nothing about what they mean.
package room

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"voicefleet/media/internal/ipc"
)

// Out is where a session's frames go. Control frames are never dropped (they wait for the
// pipe); Audio reports false when the outgoing queue is full and the frame was dropped.
type Out interface {
	Control(frame []byte)
	Audio(frame []byte) bool
	Count(reason string)
}

// joinTimeout bounds a join, the SDK's and ours (a var for tests).
var joinTimeout = 10 * time.Second

// leaveDataWait bounds how long a leave waits for queued data packets; leaveFlush is how
// long after the last one was handed to the data channel the participant stays.
const (
	leaveDataWait = time.Second
	leaveFlush    = 200 * time.Millisecond
)

// Session is one device session's participant.
type Session struct {
	id  uint32
	out Out

	mu    sync.Mutex
	room  *lksdk.Room
	track *lksdk.LocalTrack
	left  bool
	// disconnected is set when Leave disconnects the room: a data packet still queued then
	// is dropped (counted), since publishing on a closed room waits the SDK's connect
	// timeout (15 s) each, which kept the session alive long after Left.
	disconnected bool
	cancel       context.CancelFunc
	// joinDone is closed when the join goroutine has finished, joined or not.
	joinDone chan struct{}
	// readers are the goroutines reading remote tracks and text streams.
	readers sync.WaitGroup
	// tracks are the remote audio tracks being read, oldest first; heard is the last one,
	// the only one whose RTP goes to the gateway (read per packet, without mu), with its
	// generation; generation (under mu) is the last one given.
	tracks     []*webrtc.TrackRemote
	heard      atomic.Pointer[heardTrack]
	generation uint16
	// data keeps the gateway's data packets in order: one sender per session.
	data chan dataPacket
	// dataDone is closed when the data sender has sent (or dropped) everything queued.
	dataDone    chan struct{}
	lastPublish time.Time

	// The SDK runs OnParticipantConnected and OnParticipantDisconnected each on a
	// goroutine of its own, so they can come in either order; reported (under partMu), the
	// participant passed up as joined under each identity, puts them back in the room's.
	partMu   sync.Mutex
	reported map[string]*lksdk.RemoteParticipant

	// sid is the participant's SID once joined (under mu); reconnect (under mu) is the
	// timer of a reconnection in progress; reportedLost (under mu) is set once the session
	// was reported disconnected: it is reported once (reconnect.go).
	sid          string
	reconnect    *time.Timer
	reportedLost bool
}

type dataPacket struct {
	topic   string
	payload []byte
}

// dataQueue bounds the data packets waiting for the reliable channel per session.
const dataQueue = 256

// Join starts joining in the background; the outcome is a Joined or JoinFailed frame.
func Join(id uint32, out Out, url, token string) *Session {
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	s := &Session{id: id, out: out, cancel: cancel, joinDone: make(chan struct{}), data: make(chan dataPacket, dataQueue), dataDone: make(chan struct{})}
	go s.join(ctx, url, token)
	go s.sendData()
	return s
}

func (s *Session) control(b *ipc.Builder) {
	f, err := b.Finish()
	if err != nil {
		s.out.Count("event_too_large")
		return
	}
	s.out.Control(f)
}

// newRoom is the session's room, not yet joined, whose events are passed up as frames.
func (s *Session) newRoom() *lksdk.Room {
	var r *lksdk.Room
	cb := lksdk.NewRoomCallback()
	cb.OnParticipantConnected = func(rp *lksdk.RemoteParticipant) { s.participantJoined(r, rp) }
	cb.OnParticipantDisconnected = func(rp *lksdk.RemoteParticipant) { s.participantLeft(rp) }
	cb.OnAttributesChanged = func(_ map[string]string, p lksdk.Participant) {
		if _, remote := p.(*lksdk.RemoteParticipant); remote {
			s.control(ipc.NewFrame(ipc.Attributes, s.id).String(p.Identity()).Map(p.Attributes()))
		}
	}
	cb.OnDataPacket = func(data lksdk.DataPacket, params lksdk.DataReceiveParams) {
		if u, ok := data.(*lksdk.UserDataPacket); ok {
			s.control(ipc.NewFrame(ipc.DataIn, s.id).String(u.Topic).String(params.SenderIdentity).Bytes(u.Payload))
		}
	}
	cb.OnTrackSubscribed = func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
		s.subscribed(track)
	}
	cb.OnDisconnectedWithReason = func(reason lksdk.DisconnectionReason) { s.lost(string(reason)) }
	cb.OnReconnecting = s.reconnecting
	cb.OnReconnected = func() { s.reconnected(r) }
	r = lksdk.NewRoom(cb)
	for _, topic := range TextTopics {
		_ = r.RegisterTextStreamHandler(topic, s.textStream)
	}
	return r
}

func (s *Session) join(ctx context.Context, url, token string) {
	defer close(s.joinDone)
	defer s.cancel()
	r := s.newRoom()
	if err := joinRoom(ctx, r, url, token); err != nil {
		if s.isLeft() {
			return
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			s.out.Count("join_timed_out")
		}
		s.control(ipc.NewFrame(ipc.JoinFailed, s.id).String(err.Error()))
		return
	}
	track, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err == nil {
		_, err = r.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{
			Name: "microphone", Source: livekit.TrackSource_MICROPHONE,
		})
	}
	if err != nil {
		r.Disconnect()
		s.control(ipc.NewFrame(ipc.JoinFailed, s.id).String("publish: " + err.Error()))
		return
	}
	s.mu.Lock()
	if s.left {
		s.mu.Unlock()
		r.Disconnect()
		return
	}
	s.room, s.track, s.sid = r, track, r.LocalParticipant.SID()
	s.mu.Unlock()
	s.control(ipc.NewFrame(ipc.Joined, s.id).String(r.LocalParticipant.Identity()))
	// Participants already in the room at join time get no connected callback.
	for _, rp := range r.GetRemoteParticipants() {
		s.participantJoined(r, rp)
	}
}

// joinGiveUp is how long the SDK's join may take to return once the join's deadline has
// passed (or Leave cancelled it) and its room was disconnected; past it the session stops
// waiting for it.
const joinGiveUp = time.Second

// joinRoom joins r, bounded by ctx. The SDK bounds its dial by ctx but not its wait for the
// server's first message once the WebSocket is up: a server that upgrades and stays silent
// held the join, and the session's Leave behind it, for good. Disconnecting the room closes
// the connection that wait reads.
func joinRoom(ctx context.Context, r *lksdk.Room, url, token string) error {
	done := make(chan error, 1)
	go func() { done <- r.JoinWithContextAndToken(ctx, url, token, lksdk.WithAutoSubscribe(true)) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	r.Disconnect()
	select {
	case err := <-done:
		if err == nil {
			// Joined just as the deadline passed, and disconnected above.
			err = ctx.Err()
		}
		return err
	case <-time.After(joinGiveUp):
		// Still inside the SDK (its validation request has a timeout of its own, 3 s).
		return ctx.Err()
	}
}

// participantJoined passes a participant up as joined, once, if it is still the room's
// under its identity: one the SDK has already removed is passed up neither joined nor left
// (participantLeft finds it not reported). Another one passed up under that identity is
// gone (the SDK adds a participant only once the old one left its map), though its own
// disconnect may not have come yet: its leave is passed up first.
func (s *Session) participantJoined(r *lksdk.Room, rp *lksdk.RemoteParticipant) {
	s.partMu.Lock()
	defer s.partMu.Unlock()
	id := rp.Identity()
	if r.GetParticipantByIdentity(id) != rp {
		return
	}
	if cur, ok := s.reported[id]; ok {
		if cur == rp {
			return
		}
		s.control(ipc.NewFrame(ipc.ParticipantLeft, s.id).String(id))
	}
	if s.reported == nil {
		s.reported = map[string]*lksdk.RemoteParticipant{}
	}
	s.reported[id] = rp
	s.control(ipc.NewFrame(ipc.ParticipantJoined, s.id).String(id).U8(byte(rp.Kind())).Map(rp.Attributes()))
}

// participantLeft passes a participant up as left if it was passed up as joined, and not
// while a reconnection is in progress: the SDK's full reconnect removes every remote
// participant, though none of them left, and that reconnection ends in the session being
// reported lost (reconnect.go). Passed up first, the agent's leave made the gateway end the
// session as the agent's own end (agent_ended) instead of a failure of its room.
func (s *Session) participantLeft(rp *lksdk.RemoteParticipant) {
	s.partMu.Lock()
	defer s.partMu.Unlock()
	s.mu.Lock()
	reconnecting := s.reconnect != nil
	s.mu.Unlock()
	if reconnecting {
		return
	}
	id := rp.Identity()
	if s.reported[id] == rp {
		delete(s.reported, id)
		s.control(ipc.NewFrame(ipc.ParticipantLeft, s.id).String(id))
	}
}

func (s *Session) isLeft() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.left
}

// lost reports a disconnect the gateway did not ask for, once; whether it did now.
func (s *Session) lost(reason string) bool {
	s.mu.Lock()
	report := !s.left && !s.reportedLost
	s.reportedLost = true
	s.mu.Unlock()
	if report {
		s.control(ipc.NewFrame(ipc.Disconnected, s.id).String(reason))
	}
	return report
}

// WriteOpus publishes one device packet unchanged, at the RTP timestamp the gateway set.
func (s *Session) WriteOpus(ts uint32, durationMs uint16, payload []byte) {
	s.mu.Lock()
	track := s.track
	s.mu.Unlock()
	if track == nil {
		s.out.Count("opus_before_joined")
		return
	}
	err := track.WriteSample(media.Sample{
		Data:            payload,
		Duration:        time.Duration(durationMs) * time.Millisecond,
		PacketTimestamp: ts,
	}, nil)
	if err != nil {
		s.out.Count("opus_write_failed")
	}
}

// SendData queues a reliable data packet; never blocks (a full queue drops and counts).
func (s *Session) SendData(topic string, payload []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.left {
		return
	}
	select {
	case s.data <- dataPacket{topic, payload}:
	default:
		s.out.Count("data_queue_full")
	}
}

func (s *Session) sendData() {
	defer close(s.dataDone)
	for p := range s.data {
		s.publish(p.topic, p.payload)
	}
}

func (s *Session) publish(topic string, payload []byte) {
	s.mu.Lock()
	r, disconnected := s.room, s.disconnected
	s.mu.Unlock()
	if disconnected {
		s.out.Count("data_after_leave")
		return
	}
	if r == nil {
		s.out.Count("data_before_joined")
		return
	}
	opts := []lksdk.DataPublishOption{lksdk.WithDataPublishReliable(true)}
	if topic != "" {
		opts = append(opts, lksdk.WithDataPublishTopic(topic))
	}
	if err := r.LocalParticipant.PublishDataPacket(&lksdk.UserDataPacket{Payload: payload, Topic: topic}, opts...); err != nil {
		s.out.Count("data_send_failed")
		return
	}
	s.mu.Lock()
	s.lastPublish = time.Now()
	s.mu.Unlock()
}

// Leave disconnects (cancelling a join in progress), waits for the readers, then reports
// Left. Safe to call more than once; blocks, so callers run it in its own goroutine.
func (s *Session) Leave() {
	s.mu.Lock()
	if s.left {
		s.mu.Unlock()
		return
	}
	s.left = true
	close(s.data)
	if s.reconnect != nil {
		s.reconnect.Stop()
		s.reconnect = nil
	}
	s.mu.Unlock()
	s.cancel()
	<-s.joinDone
	// The gateway's last data packets (cleanup_request) go out before the participant
	// leaves: wait for the sender, then give the data channel a moment to flush what
	// PublishDataPacket has only buffered (the SDK does not expose its buffered amount).
	select {
	case <-s.dataDone:
	case <-time.After(leaveDataWait):
	}
	s.mu.Lock()
	r := s.room
	since := time.Since(s.lastPublish)
	s.mu.Unlock()
	if since < leaveFlush {
		time.Sleep(leaveFlush - since)
	}
	s.mu.Lock()
	s.disconnected = true
	s.mu.Unlock()
	if r != nil {
		r.Disconnect()
	}
	s.readers.Wait()
	s.control(ipc.NewFrame(ipc.Left, s.id))
}
