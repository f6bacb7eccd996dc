/**
 * The Opus "blank frame" a LiveKit server writes on its own into a subscriber's audio
 * track: 0xf8 0xff 0xfe (a 20 ms CELT fullband frame that decodes to silence) padded with
 * 77 zero bytes, 80 bytes in all (livekit-server v1.13.5, pkg/sfu/downtrack.go,
 * `OpusSilenceFrame`). The server sends them at 50 per second for up to 5 s to a Go SDK
 * subscriber, whose track only appears with its first packet, until the publisher's first
 * packet (`sendSilentFrameOnMuteForAudio`, enabled by `FireTrackByRTPPacket`), and to any
 * subscriber for 1 s after a publisher mutes. Our media process is a Go SDK subscriber, so
 * each agent track starts with them. They carry no agent audio: decoding them only costs
 * CPU and makes silence that is not the agent's.
 */
const BLANK = Buffer.concat([Buffer.from([0xf8, 0xff, 0xfe]), Buffer.alloc(77)]);

export function isServerBlankFrame(payload: Buffer): boolean {
  return payload.length === BLANK.length && payload[0] === 0xf8 && payload.equals(BLANK);
}
