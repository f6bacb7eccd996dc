package main

import (
	"sort"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// roundRobin picks the member of each shared-subscription group in turn, like EMQX's
// round_robin strategy (broker contract rule 5). mochi's own pick is the first entry of
// a Go map iteration, which favours one member heavily and so skews how sessions spread
// over gateway instances.
type roundRobin struct {
	mu   sync.Mutex
	next map[string]int
}

// OnSelectSubscribers selects one member per shared group for this message.
func (h *contractHook) OnSelectSubscribers(subs *mqtt.Subscribers, _ packets.Packet) *mqtt.Subscribers {
	subs.SharedSelected = h.shared.selectShared(subs.Shared)
	return subs
}

func (r *roundRobin) selectShared(groups map[string]map[string]packets.Subscription) map[string]packets.Subscription {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next == nil {
		r.next = map[string]int{}
	}
	selected := map[string]packets.Subscription{}
	for group, members := range groups {
		if len(members) == 0 {
			continue
		}
		ids := make([]string, 0, len(members))
		for id := range members {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		n := r.next[group]
		r.next[group] = n + 1
		id := ids[n%len(ids)]
		sub := members[id]
		if prev, ok := selected[id]; ok {
			sub = prev.Merge(sub)
		}
		selected[id] = sub
	}
	return selected
}
