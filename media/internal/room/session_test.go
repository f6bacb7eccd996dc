package room

import (
	"testing"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
)

// A data packet still queued when Leave disconnects the room (its sender stuck behind a
// room that stopped answering) is dropped and counted. Published on the closed room, each
// would wait the SDK's connect timeout (15 s): up to dataQueue of them kept the session,
// its room and its queue alive long after Left.
func TestDataStillQueuedWhenTheRoomIsDisconnectedIsCountedNotPublished(t *testing.T) {
	out := newRecordingOut()
	s := &Session{id: 7, out: out, cancel: func() {}, joinDone: make(chan struct{}),
		data: make(chan dataPacket, dataQueue), dataDone: make(chan struct{})}
	close(s.joinDone)
	s.room = lksdk.NewRoom(lksdk.NewRoomCallback())
	for range 3 {
		s.data <- dataPacket{topic: "lk.chat", payload: []byte("late")}
	}
	// The sender is not running: Leave gives up waiting for it and disconnects the room.
	s.Leave()
	go s.sendData()

	for i := range 3 {
		select {
		case reason := <-out.counts:
			if reason != "data_after_leave" {
				t.Fatalf("packet %d counted %q, want data_after_leave", i, reason)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("packet %d neither counted nor dropped within 2 s", i)
		}
	}
	select {
	case <-s.dataDone:
	case <-time.After(time.Second):
		t.Fatal("the sender still runs after its queue was dropped")
	}
}
