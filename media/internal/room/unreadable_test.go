package room

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// A real pion connection on loopback: the sending side writes whole RTP packets as they
// are (rawTrack), so a test can send one the receiving side cannot read.

// rawTrack is an audio track whose packets the test writes whole, payload type included.
type rawTrack struct {
	bound chan webrtc.TrackLocalContext
}

func (r *rawTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	r.bound <- ctx
	return ctx.CodecParameters()[0], nil
}
func (r *rawTrack) Unbind(webrtc.TrackLocalContext) error { return nil }
func (r *rawTrack) ID() string                            { return "agent-voice" }
func (r *rawTrack) RID() string                           { return "" }
func (r *rawTrack) StreamID() string                      { return "agent" }
func (r *rawTrack) Kind() webrtc.RTPCodecType             { return webrtc.RTPCodecTypeAudio }

// opusOnlyAPI is pion with Opus alone registered (payload type 111), and ICE on loopback only.
func opusOnlyAPI(t *testing.T) *webrtc.API {
	t.Helper()
	media := &webrtc.MediaEngine{}
	opus := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		PayloadType:        111,
	}
	if err := media.RegisterCodec(opus, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	settings := webrtc.SettingEngine{}
	settings.SetIncludeLoopbackCandidate(true)
	settings.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	settings.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(media), webrtc.WithSettingEngine(settings))
}

// connectedPair connects a sender with a rawTrack to a receiver; it returns the track's
// context (to write with) and the receiver's remote track, which pion gives once the
// first packet (a readable one, sequence 1) has arrived.
func connectedPair(t *testing.T) (webrtc.TrackLocalContext, *webrtc.TrackRemote, *webrtc.PeerConnection) {
	t.Helper()
	api := opusOnlyAPI(t)
	sender, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	receiver, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sender.Close(); _ = receiver.Close() })
	track := &rawTrack{bound: make(chan webrtc.TrackLocalContext, 1)}
	if _, err := sender.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	remotes := make(chan *webrtc.TrackRemote, 1)
	receiver.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { remotes <- remote })
	signal := func(from, to *webrtc.PeerConnection, offer bool) {
		var desc webrtc.SessionDescription
		if offer {
			desc, err = from.CreateOffer(nil)
		} else {
			desc, err = from.CreateAnswer(nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		gathered := webrtc.GatheringCompletePromise(from)
		if err := from.SetLocalDescription(desc); err != nil {
			t.Fatal(err)
		}
		<-gathered
		if err := to.SetRemoteDescription(*from.LocalDescription()); err != nil {
			t.Fatal(err)
		}
	}
	signal(sender, receiver, true)
	signal(receiver, sender, false)
	var ctx webrtc.TrackLocalContext
	select {
	case ctx = <-track.bound:
	case <-time.After(10 * time.Second):
		t.Fatal("the track was not bound")
	}
	// Until the connection is up, writes are lost: write the first packet until it arrives.
	for {
		writeRTP(t, ctx, 111, 1)
		select {
		case remote := <-remotes:
			return ctx, remote, receiver
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// writeRTP writes one packet of payload type pt and sequence seq (timestamp 960 a
// packet, payload one byte: the sequence's low byte).
func writeRTP(t *testing.T, ctx webrtc.TrackLocalContext, pt uint8, seq uint16) {
	t.Helper()
	ts := uint32(seq) * 960
	ssrc := uint32(ctx.SSRC())
	packet := []byte{
		0x80, pt, byte(seq >> 8), byte(seq),
		byte(ts >> 24), byte(ts >> 16), byte(ts >> 8), byte(ts),
		byte(ssrc >> 24), byte(ssrc >> 16), byte(ssrc >> 8), byte(ssrc),
		byte(seq),
	}
	if _, err := ctx.WriteStream().Write(packet); err != nil {
		t.Fatal(err)
	}
}

// reading runs readTrack on remote until it returns; the packets forwarded and the counts
// come on the channels, and ended is closed when it returns.
func reading(remote *webrtc.TrackRemote) (sequences chan uint16, counts chan string, ended chan struct{}) {
	sequences, ended = make(chan uint16, 1024), make(chan struct{})
	out := newRecordingOut()
	go func() {
		defer close(ended)
		readTrack(remote, func(sequence uint16, _ uint32, _ []byte) { sequences <- sequence }, out)
	}()
	return sequences, out.counts, ended
}

func nextSequence(t *testing.T, sequences chan uint16, ended chan struct{}) uint16 {
	t.Helper()
	select {
	case s := <-sequences:
		return s
	case <-ended:
		t.Fatal("the track's reading ended")
	case <-time.After(5 * time.Second):
		t.Fatal("no packet forwarded in 5 s")
	}
	return 0
}

func TestAPacketOfAPayloadTypeNotNegotiatedIsCountedAndTheNextIsStillRead(t *testing.T) {
	ctx, remote, _ := connectedPair(t)
	sequences, counts, ended := reading(remote)
	if s := nextSequence(t, sequences, ended); s != 1 {
		t.Fatalf("first packet forwarded: %d", s)
	}
	writeRTP(t, ctx, 100, 2) // payload type 100: not negotiated
	writeRTP(t, ctx, 111, 3)
	// The first packet may have been written more than once while the connection came up.
	s := nextSequence(t, sequences, ended)
	for s == 1 {
		s = nextSequence(t, sequences, ended)
	}
	if s != 3 {
		t.Fatalf("packet after the unreadable one: %d, want 3", s)
	}
	select {
	case r := <-counts:
		if r != "agent_rtp_unreadable" {
			t.Fatalf("counted %q", r)
		}
	default:
		t.Fatal("the unreadable packet was not counted")
	}
}

func TestTheTracksEndEndsItsReadingWithNothingCounted(t *testing.T) {
	_, remote, receiver := connectedPair(t)
	sequences, counts, ended := reading(remote)
	nextSequence(t, sequences, ended)
	if err := receiver.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("reading still running 5 s after the connection closed")
	}
	if len(counts) != 0 {
		t.Fatalf("counted at the end: %q", <-counts)
	}
}

func TestAReadingThatFailsMaxUnreadableInRowTimesEndsCounted(t *testing.T) {
	ctx, remote, _ := connectedPair(t)
	sequences, counts, ended := reading(remote)
	nextSequence(t, sequences, ended)
	for i := range maxUnreadableInRow {
		writeRTP(t, ctx, 100, uint16(2+i))
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatalf("still reading after %d unreadable packets in a row", maxUnreadableInRow)
	}
	got := map[string]int{}
	for len(counts) > 0 {
		got[<-counts]++
	}
	if got["agent_rtp_unreadable"] != maxUnreadableInRow || got["agent_track_unreadable"] != 1 || len(got) != 2 {
		t.Fatalf("counted %v", got)
	}
}
