/**
 * The deployed agent's tool calls on the device (docs/device-protocol.md 5.3): tool-name
 * mapping, MCP requests and their answers back to the agent. Pure code, time injected.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  planTool,
  VOLUME_DEBOUNCE_MS,
  VolumeSteps,
  volumeFromStatus,
} from "../src/agent/livekit/agent-protocol/tools.ts";
import { errorPayload, McpCalls } from "../src/agent/livekit/mcp-calls.ts";
import { ToolCalls } from "../src/agent/livekit/tool-calls.ts";
import type { JsonObject } from "../src/protocol/messages.ts";
import { ManualTimers } from "./support/manual-timers.ts";

describe("tool names (device-protocol.md 5.3)", () => {
  it("maps the agent's names to the device's MCP tools", () => {
    const cases: [string, string][] = [
      ["self_set_volume", "self.audio_speaker.set_volume"],
      ["self_get_volume", "self.get_device_status"],
      ["self_mute", "self.audio_speaker.mute"],
      ["self_unmute", "self.audio_speaker.unmute"],
      ["self_set_light_color", "self.led.set_color"],
      ["self_get_battery_status", "self.battery.get_status"],
      ["self_set_light_mode", "self.led.set_mode"],
      ["self_set_rainbow_speed", "self.led.set_rainbow_speed"],
    ];
    for (const [name, tool] of cases)
      assert.deepEqual(planTool(name, {}), { kind: "call", tool, arguments: {} });
  });

  it("passes unknown names through unchanged", () => {
    assert.deepEqual(planTool("set_rainbow_speed", { speed_ms: 100 }), {
      kind: "call",
      tool: "set_rainbow_speed",
      arguments: { speed_ms: 100 },
    });
  });

  it("clamps set_volume to 0..100", () => {
    assert.deepEqual(planTool("self_set_volume", { volume: 140 }), {
      kind: "call",
      tool: "self.audio_speaker.set_volume",
      arguments: { volume: 100 },
    });
  });

  it("turns volume up/down into signed steps, 10 by default", () => {
    assert.deepEqual(planTool("self_volume_up", {}), { kind: "volume_step", delta: 10 });
    assert.deepEqual(planTool("self_volume_down", { step: 5 }), { kind: "volume_step", delta: -5 });
  });

  it("sums debounced steps and keeps every request id", () => {
    const steps = new VolumeSteps();
    steps.add(10, "a");
    steps.add(10, "b");
    steps.add(-5, undefined);
    assert.deepEqual(steps.take(), { delta: 15, requestIds: ["a", "b", undefined] });
    assert.equal(steps.pending, false);
  });

  it("reads the volume from a get_device_status answer", () => {
    const text = JSON.stringify({ audio_speaker: { volume: 60 } });
    assert.equal(
      volumeFromStatus({ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text", text }] } }),
      60,
    );
    assert.equal(volumeFromStatus({ jsonrpc: "2.0", id: 1, error: { code: 1 } }), undefined);
  });
});

describe("MCP calls", () => {
  it("resolve with the device's own answer, matched by id", async () => {
    const calls = new McpCalls(4, 1000);
    let sent: Record<string, unknown> = {};
    const p = calls.call("self.battery.get_status", {}, (payload) => {
      sent = payload;
    });
    const answer = {
      jsonrpc: "2.0",
      id: sent.id as number,
      result: { content: [{ type: "text", text: "{}" }] },
    };
    assert.equal(calls.answer(answer), true);
    assert.deepEqual(await p, answer);
  });

  it("resolve with an error payload on close", async () => {
    const calls = new McpCalls(4, 1000);
    const p = calls.call("x", {}, () => {});
    calls.rejectAll("session closed");
    const r = await p;
    assert.equal((r.error as { message: string }).message, "session closed");
  });
});

describe("tool calls on the device", () => {
  /** A device that answers status with `volume` and accepts set_volume. */
  function device(calls: JsonObject[], volume: number) {
    return (mcp: McpCalls) => (payload: JsonObject) => {
      calls.push(payload);
      const params = payload.params as { name: string; arguments: { volume?: number } };
      const text =
        params.name === "self.get_device_status" ? JSON.stringify({ audio_speaker: { volume } }) : "true";
      if (params.arguments.volume !== undefined) volume = params.arguments.volume;
      setImmediate(() =>
        mcp.answer({ jsonrpc: "2.0", id: payload.id ?? 0, result: { content: [{ type: "text", text }] } }),
      );
    };
  }

  it("sums quick volume steps into one change and answers every request id", async () => {
    const mcp = new McpCalls(4, 1000);
    const sent: JsonObject[] = [];
    const answered: string[] = [];
    const answeredAll = new Promise<void>((resolve) => {
      const tools = new ToolCalls(mcp, {
        toDevice: device(sent, 40)(mcp),
        answer: (_payload, id) => {
          answered.push(id);
          if (answered.length === 2) resolve();
        },
      });
      tools.call("self_volume_up", {}, "req_1");
      tools.call("self_volume_up", { step: 5 }, "req_2");
    });
    await answeredAll;
    assert.deepEqual(
      sent.map((p) => (p.params as { name: string; arguments: JsonObject }).arguments),
      [{}, { volume: 55 }],
    );
    assert.deepEqual(answered, ["req_1", "req_2"]);
  });

  it("close answers steps still in their debounce window with an error, and sends the device nothing", async () => {
    const mcp = new McpCalls(4, 1000);
    const sent: JsonObject[] = [];
    const answers: [string, JsonObject][] = [];
    const tools = new ToolCalls(mcp, {
      toDevice: (p) => sent.push(p),
      answer: (payload, id) => answers.push([id, payload]),
    });
    tools.call("self_volume_up", {}, "req_1");
    await tools.close("session closed");
    assert.deepEqual(answers, [["req_1", errorPayload(null, "session closed")]]);
    assert.deepEqual(sent, []);
  });

  it("close answers a volume change waiting on the device with an error, and makes no further call", async () => {
    const mcp = new McpCalls(4, 1000);
    const timers = new ManualTimers();
    const sent: JsonObject[] = [];
    const answers: string[] = [];
    const tools = new ToolCalls(
      mcp,
      {
        toDevice: (p) => sent.push(p),
        answer: (payload, id) => answers.push(`${id} ${(payload.error as { message: string }).message}`),
      },
      timers.start,
    );
    tools.call("self_volume_up", {}, "req_1");
    timers.advance(VOLUME_DEBOUNCE_MS);
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(sent.length, 1, "the volume read went to the device");
    await tools.close("session closed");
    assert.deepEqual(answers, ["req_1 session closed"]);
    assert.equal(sent.length, 1, "no set_volume after close");
  });
});
