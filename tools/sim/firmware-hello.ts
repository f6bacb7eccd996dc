/**
 * The hello current xiaozhi firmware sends (docs/device-protocol.md section 2.3): protocol
 * version 3, UDP audio, Opus 16 kHz mono upstream in frames of `frameDurationMs` (60 ms
 * unless the firmware was built otherwise). Written once, for the simulator and the tests.
 */
export function firmwareHello(frameDurationMs = 60) {
  return {
    type: "hello",
    version: 3,
    features: { mcp: true },
    transport: "udp",
    audio_params: { format: "opus", sample_rate: 16000, channels: 1, frame_duration: frameDurationMs },
  };
}
