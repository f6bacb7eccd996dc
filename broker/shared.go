package main

import (
	"hash/fnv"
	"sort"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hashTopic picks the member of each shared-subscription group from a hash of the
// message's topic, like EMQX's hash_topic strategy (broker contract rule 5): EMQX takes
// `1 + erlang:phash2(SourceTopic) rem Count` over the group's live subscribers
// (emqx_shared_sub.erl, do_pick_subscriber/6). The gateway's ingest topic is
// `ingest/<clientid>`, so every message of one device reaches the same gateway instance
// for as long as the set of instances does not change (affinity), and devices spread over
// the instances by their client ids, not by the order their messages arrive in. We hash
// with FNV-1a (phash2 is Erlang's own): a different but equally stable pick; what the
// gateways rely on is only "same topic, same member set -> same member".
type hashTopic struct{}

// OnSelectSubscribers selects one member per shared group for this message.
func (h *contractHook) OnSelectSubscribers(subs *mqtt.Subscribers, pk packets.Packet) *mqtt.Subscribers {
	subs.SharedSelected = h.shared.selectShared(subs.Shared, pk.TopicName)
	return subs
}

func (hashTopic) selectShared(groups map[string]map[string]packets.Subscription, topic string) map[string]packets.Subscription {
	selected := map[string]packets.Subscription{}
	for _, members := range groups {
		if len(members) == 0 {
			continue
		}
		ids := make([]string, 0, len(members))
		for id := range members {
			ids = append(ids, id)
		}
		// Sorted: the pick must not depend on Go's random map order.
		sort.Strings(ids)
		id := ids[topicHash(topic)%uint32(len(ids))]
		sub := members[id]
		if prev, ok := selected[id]; ok {
			sub = prev.Merge(sub)
		}
		selected[id] = sub
	}
	return selected
}

func topicHash(topic string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(topic))
	return h.Sum32()
}
