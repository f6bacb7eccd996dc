// load-agent plays the AI agent in every room of a benchmark (npm run bench:rooms), cheaply
// enough that the gateway stays the thing measured. Room names arrive on stdin, one per
// line; for each it joins as an agent participant, subscribes to the device's track and
// checks every packet against the device's known frames (the media process forwards them
// unchanged, so each must match one byte for byte; the LiveKit server's own silence frames,
// which prime a Go subscriber's track until the publisher's first packet, are counted
// apart), and talks back `-talk` of the time with pre-encoded Opus (-frame-ms packets, 20
// by default), sending nothing between (DTX). It prints one JSON line of totals a second on
// stdout, and exits on stdin EOF.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	protoLogger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

type totals struct {
	Rooms      int64 `json:"rooms"`
	JoinFailed int64 `json:"joinFailed"`
	Received   int64 `json:"received"`
	Matched    int64 `json:"matched"`
	Blank      int64 `json:"blank"`
	Sent       int64 `json:"sent"`
}

var stats totals

// serverBlank is the Opus frame a LiveKit server writes into a subscriber's track on its
// own (livekit-server pkg/sfu/downtrack.go, OpusSilenceFrame): f8 ff fe and 77 zeros.
var serverBlank = string(append([]byte{0xf8, 0xff, 0xfe}, make([]byte, 77)...))

// goldenPhase spreads the k-th room's talk phase over the period: evenly for any count.
func goldenPhase(k int64, period time.Duration) time.Duration {
	const golden = 0.6180339887498949
	f := float64(k) * golden
	return time.Duration((f - float64(int64(f))) * float64(period))
}

// readFrames reads a file of u16 LE length-prefixed packets.
func readFrames(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for len(b) >= 2 {
		n := int(binary.LittleEndian.Uint16(b))
		if len(b) < 2+n {
			return nil, fmt.Errorf("%s: truncated", path)
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out, nil
}

type talker struct {
	track *lksdk.LocalTrack
	phase time.Duration
	next  int
}

func main() {
	url := flag.String("url", "", "LiveKit ws:// URL")
	key := flag.String("key", "", "API key")
	secret := flag.String("secret", "", "API secret (or LIVEKIT_API_SECRET)")
	deviceFrames := flag.String("device-frames", "", "the device's Opus packets")
	agentFrames := flag.String("agent-frames", "", "Opus packets (-frame-ms each) to talk with")
	talk := flag.Float64("talk", 0.35, "share of time talking")
	frameMs := flag.Int("frame-ms", 20, "duration of each agent-frames packet, ms")
	flag.Parse()
	if *secret == "" {
		*secret = os.Getenv("LIVEKIT_API_SECRET")
	}
	lksdk.SetLogger(protoLogger.LogRLogger(logr.Discard()))
	known := map[string]bool{}
	dev, err := readFrames(*deviceFrames)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for _, f := range dev {
		known[string(f)] = true
	}
	voice, err := readFrames(*agentFrames)
	if err != nil || len(voice) == 0 {
		fmt.Fprintln(os.Stderr, "agent frames:", err)
		os.Exit(2)
	}

	var mu sync.Mutex
	var talkers []*talker
	var rooms []*lksdk.Room
	start := time.Now()
	period := 10 * time.Second
	talkFor := time.Duration(float64(period) * *talk)

	// One ticker for every room: a packet while a room's agent is in its talk phase.
	go func() {
		frame := time.Duration(*frameMs) * time.Millisecond
		for range time.Tick(frame) {
			now := time.Since(start)
			mu.Lock()
			ts := append([]*talker(nil), talkers...)
			mu.Unlock()
			for _, t := range ts {
				if (now+t.phase)%period < talkFor {
					_ = t.track.WriteSample(media.Sample{Data: voice[t.next%len(voice)], Duration: frame}, nil)
					t.next++
					atomic.AddInt64(&stats.Sent, 1)
				}
			}
		}
	}()
	go func() {
		enc := json.NewEncoder(os.Stdout)
		for range time.Tick(time.Second) {
			_ = enc.Encode(totals{
				Rooms: atomic.LoadInt64(&stats.Rooms), JoinFailed: atomic.LoadInt64(&stats.JoinFailed),
				Received: atomic.LoadInt64(&stats.Received), Matched: atomic.LoadInt64(&stats.Matched),
				Blank: atomic.LoadInt64(&stats.Blank),
				Sent:  atomic.LoadInt64(&stats.Sent),
			})
		}
	}()

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		name := in.Text()
		go func() {
			at := auth.NewAccessToken(*key, *secret).SetIdentity("load-agent-" + name).
				SetKind(livekit.ParticipantInfo_AGENT).
				SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: name}).SetValidFor(time.Hour)
			token, err := at.ToJWT()
			if err != nil {
				atomic.AddInt64(&stats.JoinFailed, 1)
				return
			}
			cb := lksdk.NewRoomCallback()
			cb.OnTrackSubscribed = func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
				go func() {
					for {
						pkt, _, err := track.ReadRTP()
						if err != nil {
							return
						}
						atomic.AddInt64(&stats.Received, 1)
						switch p := string(pkt.Payload); {
						case known[p]:
							atomic.AddInt64(&stats.Matched, 1)
						case p == serverBlank:
							atomic.AddInt64(&stats.Blank, 1)
						}
					}
				}()
			}
			r, err := lksdk.ConnectToRoomWithToken(*url, token, cb, lksdk.WithAutoSubscribe(true))
			if err != nil {
				atomic.AddInt64(&stats.JoinFailed, 1)
				return
			}
			track, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
			if err == nil {
				_, err = r.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "agent", Source: livekit.TrackSource_MICROPHONE})
			}
			if err != nil {
				r.Disconnect()
				atomic.AddInt64(&stats.JoinFailed, 1)
				return
			}
			k := atomic.AddInt64(&stats.Rooms, 1)
			mu.Lock()
			rooms = append(rooms, r)
			talkers = append(talkers, &talker{track: track, phase: goldenPhase(k, period)})
			mu.Unlock()
		}()
	}
	if err := in.Err(); err != nil && err != io.EOF {
		fmt.Fprintln(os.Stderr, err)
	}
	mu.Lock()
	for _, r := range rooms {
		r.Disconnect()
	}
	mu.Unlock()
}
