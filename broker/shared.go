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

// OnSelectSubscribers selects one member per shared group for this message, among the
// members still connected (see connectedMember).
func (h *contractHook) OnSelectSubscribers(subs *mqtt.Subscribers, pk packets.Packet) *mqtt.Subscribers {
	subs.SharedSelected = h.shared.selectShared(subs.Shared, pk.TopicName, h.connectedMember)
	return subs
}

// connectedMember reports whether the client with this id can still receive a message.
// mochi publishes a client's will before it takes the client out of the shared groups
// (server.go, attachClient: sendLWT, then Stop, OnDisconnect, UnsubscribeClient). The
// gateways act on a dead peer's will at once: they tell its devices goodbye, and the
// devices say hello again. A hello hashed in that window to the dead member, still listed,
// would be lost, and its device would wait 10 s to retry (seen in `npm run chaos`). So a
// member whose will is going out (departing, from OnWill) or whose connection is closed
// is passed over, from the moment its will is sent.
func (h *contractHook) connectedMember(id string) bool {
	cl, ok := h.srv.Clients.Get(id)
	if !ok {
		return true // no client of that id: the member is not ours to judge
	}
	if _, gone := h.departing.Load(cl); gone {
		return false
	}
	return !cl.Closed()
}

// selectShared picks one member of each group from the topic's hash, over the members
// `eligible` accepts.
func (hashTopic) selectShared(
	groups map[string]map[string]packets.Subscription,
	topic string,
	eligible func(id string) bool,
) map[string]packets.Subscription {
	selected := map[string]packets.Subscription{}
	for _, members := range groups {
		ids := make([]string, 0, len(members))
		for id := range members {
			if eligible(id) {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			continue
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
