package main

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestRoundRobinGivesEachGroupMemberItsTurn(t *testing.T) {
	var r roundRobin
	groups := map[string]map[string]packets.Subscription{
		"gateway/ingest/+": {"g1": {}, "g2": {}, "g3": {}, "g4": {}},
	}
	counts := map[string]int{}
	for i := 0; i < 400; i++ {
		sel := r.selectShared(groups)
		if len(sel) != 1 {
			t.Fatalf("message %d went to %d members, want exactly 1", i, len(sel))
		}
		for id := range sel {
			counts[id]++
		}
	}
	for _, id := range []string{"g1", "g2", "g3", "g4"} {
		if counts[id] != 100 {
			t.Fatalf("member %s got %d of 400, want 100 (counts %v)", id, counts[id], counts)
		}
	}
}
