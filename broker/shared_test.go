package main

import (
	"fmt"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func fourMembers() map[string]map[string]packets.Subscription {
	return map[string]map[string]packets.Subscription{
		"gateway/ingest/+": {"g1": {}, "g2": {}, "g3": {}, "g4": {}},
	}
}

func pickOne(t *testing.T, groups map[string]map[string]packets.Subscription, topic string) string {
	t.Helper()
	sel := hashTopic{}.selectShared(groups, topic, func(string) bool { return true })
	if len(sel) != 1 {
		t.Fatalf("%s went to %d members, want exactly 1", topic, len(sel))
	}
	for id := range sel {
		return id
	}
	return ""
}

func TestHashTopicSendsEveryMessageOfOneTopicToOneMember(t *testing.T) {
	groups := fourMembers()
	for d := 0; d < 50; d++ {
		topic := fmt.Sprintf("ingest/GID_test@@@02_00_00_00_%02x_01@@@uuid-%d", d, d)
		first := pickOne(t, groups, topic)
		for i := 0; i < 20; i++ {
			if got := pickOne(t, groups, topic); got != first {
				t.Fatalf("%s: message %d went to %s, the first to %s", topic, i, got, first)
			}
		}
	}
}

func TestHashTopicUsesEveryMember(t *testing.T) {
	groups := fourMembers()
	counts := map[string]int{}
	for d := 0; d < 400; d++ {
		counts[pickOne(t, groups, fmt.Sprintf("ingest/device-%d", d))]++
	}
	for _, id := range []string{"g1", "g2", "g3", "g4"} {
		// Binomial(400, 1/4): mean 100, sd 8.7; 50 is over 5 sd away.
		if counts[id] < 50 {
			t.Fatalf("member %s got %d of 400 topics (counts %v)", id, counts[id], counts)
		}
	}
}

func TestHashTopicMovesOnlyWhenTheMemberSetChanges(t *testing.T) {
	groups := fourMembers()
	before := pickOne(t, groups, "ingest/one-device")
	delete(groups["gateway/ingest/+"], before)
	after := pickOne(t, groups, "ingest/one-device")
	if after == before {
		t.Fatalf("still picked %s after it left the group", before)
	}
}
