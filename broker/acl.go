package main

import (
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Topics of the contract.
const (
	topicDeviceServer  = "device-server"     // the only topic devices publish to
	prefixP2P          = "devices/p2p/"      // + clientid: replies to one device
	prefixIngest       = "ingest/"           // + clientid: device messages, re-published
	prefixLifecycle    = "lifecycle/"        // lifecycle/disconnected/<clientid>
	prefixGateway      = "gateway/"          // gateway coordination topics
	prefixPresence     = "gateway/presence/" // the only place a gateway may retain
	prefixDisconnected = "lifecycle/disconnected/"
)

// OnACLCheck applies rules 8 and 9; everything not listed is denied. mochi calls it for
// each PUBLISH (write, topic), each SUBSCRIBE filter (read, filter, including any
// $share/<group>/ prefix) and for each delivery to a subscriber (read, topic).
func (h *contractHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	var ok bool
	switch {
	case write && topic == "":
		// A topic-alias-only PUBLISH: mochi checks the ACL before resolving the alias, so
		// the real topic is checked again in OnPublish.
		ok = true
	case isGateway(cl) && write:
		ok = gatewayMayPublish(topic)
	case isGateway(cl):
		ok = gatewayMayRead(topic)
	case write:
		ok = deviceMayPublish(topic)
	default:
		ok = deviceMayRead(cl.ID, topic)
	}
	if !ok {
		action := "subscribe"
		if write {
			action = "publish"
		}
		h.denied(cl, action, topic)
	}
	return ok
}

func (h *contractHook) denied(cl *mqtt.Client, action, topic string) {
	h.stats.aclDenied.Add(1)
	h.log.Warn("acl denied",
		"event", "acl_denied",
		"action", action,
		"client", cl.ID,
		"kind", kindOf(cl),
		"topic", short(topic))
}

// deviceMayPublish: rule 8, devices publish only device-server (never retained: OnPublish).
func deviceMayPublish(topic string) bool { return topic == topicDeviceServer }

// deviceMayRead: rule 8, a device subscribes (and is delivered) only its own reply topic.
func deviceMayRead(clientID, topic string) bool { return topic == prefixP2P+clientID }

// gatewayMayPublish: rule 9, devices/p2p/<anything> and gateway/<anything>.
func gatewayMayPublish(topic string) bool {
	return hasLevelUnder(topic, prefixP2P) || hasLevelUnder(topic, prefixGateway)
}

// gatewayMayRetain: retained messages only for presence.
func gatewayMayRetain(topic string) bool { return hasLevelUnder(topic, prefixPresence) }

// gatewayMayRead: rule 9, ingest/+ (or one client's ingest/<id>), lifecycle/# and gateway/#
// and any filter below those two, each also as $share/<group>/<filter>.
func gatewayMayRead(filter string) bool {
	filter, ok := stripShare(filter)
	if !ok {
		return false
	}
	switch {
	case strings.HasPrefix(filter, prefixIngest):
		rest := filter[len(prefixIngest):]
		return rest != "" && !strings.ContainsAny(rest, "/#")
	case strings.HasPrefix(filter, prefixLifecycle):
		return len(filter) > len(prefixLifecycle)
	case strings.HasPrefix(filter, prefixGateway):
		return len(filter) > len(prefixGateway)
	}
	return false
}

// stripShare removes a "$share/<group>/" prefix (matched case-insensitively, as mochi does).
func stripShare(filter string) (string, bool) {
	const share = "$share/"
	if len(filter) < len(share) || !strings.EqualFold(filter[:len(share)], share) {
		return filter, true
	}
	rest := filter[len(share):]
	i := strings.IndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", false
	}
	return rest[i+1:], true
}

func hasLevelUnder(topic, prefix string) bool {
	return len(topic) > len(prefix) && strings.HasPrefix(topic, prefix)
}
