/**
 * A simulated device's MCP tools (device-protocol.md 2.6): answers the gateway's
 * `tools/call` for the speaker volume, the device status and the battery, as xiaozhi
 * firmware with the Bunny board's tools would; anything else is "method not found".
 * Every call is recorded.
 */
import type { DeviceMessage, SimulatedDevice } from "../../../tools/sim/device.ts";

export interface ToolCall {
  readonly name: string;
  readonly arguments: Record<string, unknown>;
}

export interface DeviceTools {
  readonly calls: ToolCall[];
  volume: number;
  stop(): void;
}

export const BATTERY = { percentage: 76, voltage_mv: 3950, charging: false, state: "normal" };

export function serveDeviceTools(device: SimulatedDevice, volume = 50): DeviceTools {
  const tools: DeviceTools = { calls: [], volume, stop: () => device.off("message", on) };
  const text = (v: unknown) => ({ content: [{ type: "text", text: JSON.stringify(v) }], isError: false });
  const on = (m: DeviceMessage) => {
    const payload = m.payload as { id?: number; method?: string; params?: ToolCall } | undefined;
    if (m.type !== "mcp" || payload?.method !== "tools/call" || !payload.params) return;
    const { name, arguments: args } = payload.params;
    tools.calls.push({ name, arguments: args ?? {} });
    let reply: Record<string, unknown>;
    if (name === "self.get_device_status")
      reply = { result: text({ audio_speaker: { volume: tools.volume } }) };
    else if (name === "self.audio_speaker.set_volume" && typeof args?.volume === "number") {
      tools.volume = args.volume;
      reply = { result: text(true) };
    } else if (name === "self.battery.get_status") reply = { result: text(BATTERY) };
    else reply = { error: { code: -32601, message: `Unknown tool: ${name}` } };
    device.send({
      session_id: device.session?.sessionId ?? "",
      type: "mcp",
      payload: { jsonrpc: "2.0", id: payload.id ?? 0, ...reply },
    });
  };
  device.on("message", on);
  return tools;
}
