/**
 * The deployed agent's tool calls on the device (docs/device-protocol.md 5.3): tool-name
 * mapping, MCP requests and their answers back to the agent, volume steps batched and
 * bounded. Pure code, time injected.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  MAX_VOLUME_BATCH,
  MAX_VOLUME_STEPS_PENDING,
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

  it("passes names of Object.prototype members through unchanged too", () => {
    // Looked up in a plain object, these found Object.prototype's members (a function, an
    // object) as the device tool's name, which JSON then dropped or sent as {}.
    for (const name of ["constructor", "toString", "__proto__", "valueOf"])
      assert.deepEqual(planTool(name, {}), { kind: "call", tool: name, arguments: {} });
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

describe("MCP calls that cannot be sent", () => {
  it("resolve at once with an error and hold no place", async () => {
    const calls = new McpCalls(4, 60_000);
    const r = await calls.call("x", {}, () => {
      throw new RangeError("Maximum call stack size exceeded");
    });
    assert.equal((r.error as { code: number }).code, -32000);
    assert.equal(calls.pending, 0);
  });
});

describe("tool calls on the device", () => {
  /** A device that answers status with its speaker's volume and accepts set_volume. */
  function device(calls: JsonObject[], speaker: { volume: number }) {
    return (mcp: McpCalls) => (payload: JsonObject) => {
      calls.push(payload);
      const params = payload.params as { name: string; arguments: { volume?: number } };
      const text =
        params.name === "self.get_device_status"
          ? JSON.stringify({ audio_speaker: { volume: speaker.volume } })
          : "true";
      if (params.arguments.volume !== undefined) speaker.volume = params.arguments.volume;
      setImmediate(() =>
        mcp.answer({ jsonrpc: "2.0", id: payload.id ?? 0, result: { content: [{ type: "text", text }] } }),
      );
    };
  }

  /** Lets the promise callbacks queued so far run. */
  const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

  /** Tool calls on a clock the test moves; `sent` is what reached the device. */
  function tools(toDevice?: (mcp: McpCalls, sent: JsonObject[]) => (payload: JsonObject) => void) {
    const mcp = new McpCalls(4, 1000);
    const timers = new ManualTimers();
    const sent: JsonObject[] = [];
    const answers: [string, JsonObject][] = [];
    const drops: string[] = [];
    const calls = new ToolCalls(
      mcp,
      {
        toDevice: toDevice ? toDevice(mcp, sent) : (p) => sent.push(p),
        answer: (payload, id) => answers.push([id, payload]),
        drop: (reason) => drops.push(reason),
      },
      timers.start,
    );
    return { calls, timers, sent, answers, drops };
  }

  it("sums quick volume steps into one change and answers every request id", async () => {
    const t = tools((mcp, sent) => device(sent, { volume: 40 })(mcp));
    t.calls.call("self_volume_up", {}, "req_1");
    t.calls.call("self_volume_up", { step: 5 }, "req_2");
    t.timers.advance(VOLUME_DEBOUNCE_MS);
    for (let i = 0; i < 50 && t.answers.length < 2; i++) await settled();
    assert.deepEqual(
      t.sent.map((p) => (p.params as { name: string; arguments: JsonObject }).arguments),
      [{}, { volume: 55 }],
    );
    assert.deepEqual(
      t.answers.map(([id]) => id),
      ["req_1", "req_2"],
    );
  });

  it("each batch starts from the device's volume read then: its own buttons change it unannounced", async () => {
    // xiaozhi firmware's volume buttons set the codec's volume and send nothing (its MCP
    // server only answers calls), so a volume remembered from an earlier batch can be stale.
    const speaker = { volume: 40 };
    const t = tools((mcp, sent) => device(sent, speaker)(mcp));
    t.calls.call("self_volume_up", {}, "req_1");
    t.timers.advance(VOLUME_DEBOUNCE_MS);
    for (let i = 0; i < 50 && t.answers.length < 1; i++) await settled();
    assert.equal(speaker.volume, 50);
    speaker.volume = 20; // the user presses volume down three times on the device
    t.calls.call("self_volume_up", {}, "req_2");
    t.timers.advance(VOLUME_DEBOUNCE_MS);
    for (let i = 0; i < 50 && t.answers.length < 2; i++) await settled();
    assert.equal(speaker.volume, 30, "louder from 20, not from the 50 set before");
    assert.deepEqual(
      t.sent.map((p) => (p.params as { name: string }).name),
      [
        "self.get_device_status",
        "self.audio_speaker.set_volume",
        "self.get_device_status",
        "self.audio_speaker.set_volume",
      ],
    );
  });

  it("a volume read that failed sets nothing: the steps get its error, not a guess", async () => {
    // The device at volume 30 fails its status read (here an error answer; a timeout or
    // McpCalls' overload answer alike): a volume *down* must not set it to 70 - 10.
    const t = tools((mcp, sent) => (payload) => {
      sent.push(payload);
      const error = { code: -32603, message: "busy" };
      setImmediate(() => mcp.answer({ jsonrpc: "2.0", id: payload.id ?? 0, error }));
    });
    t.calls.call("self_volume_down", {}, "req_1");
    t.timers.advance(VOLUME_DEBOUNCE_MS);
    for (let i = 0; i < 50 && t.answers.length < 1; i++) await settled();
    assert.deepEqual(
      t.sent.map((p) => (p.params as { name: string }).name),
      ["self.get_device_status"],
      "no set_volume after a failed read",
    );
    assert.equal(t.answers.length, 1);
    assert.equal(t.answers[0]?.[0], "req_1");
    assert.ok(t.answers[0]?.[1].error !== undefined, "the step is answered with an error");
  });

  it("a batch goes VOLUME_DEBOUNCE_MS after its first step: later steps do not push it back", async () => {
    const t = tools();
    t.calls.call("self_volume_up", {}, "req_1");
    t.timers.advance(VOLUME_DEBOUNCE_MS - 100);
    t.calls.call("self_volume_up", {}, "req_2");
    t.timers.advance(100);
    await settled();
    assert.equal(t.sent.length, 1, "the batch's volume read went to the device");
    await t.calls.close("done");
  });

  it("a batch of MAX_VOLUME_BATCH steps goes at once", async () => {
    const t = tools();
    for (let i = 0; i < MAX_VOLUME_BATCH; i++) t.calls.call("self_volume_down", {}, `req_${i}`);
    await settled();
    assert.equal(t.sent.length, 1, "the batch's volume read went to the device");
    await t.calls.close("done");
  });

  it("a step beyond MAX_VOLUME_STEPS_PENDING is answered at once with an error, and counted", async () => {
    const t = tools(); // a device that never answers
    for (let i = 0; i < MAX_VOLUME_STEPS_PENDING; i++) t.calls.call("self_volume_up", {}, `req_${i}`);
    await settled();
    assert.deepEqual(t.answers, []);
    t.calls.call("self_volume_up", {}, "req_over");
    assert.deepEqual(t.answers, [["req_over", errorPayload(null, "too many volume changes pending")]]);
    assert.deepEqual(t.drops, ["agent_volume_steps_overflow"]);
    await t.calls.close("done");
  });

  it("close answers steps still in their debounce window with an error, and sends the device nothing", async () => {
    const t = tools();
    t.calls.call("self_volume_up", {}, "req_1");
    await t.calls.close("session closed");
    assert.deepEqual(t.answers, [["req_1", errorPayload(null, "session closed")]]);
    assert.deepEqual(t.sent, []);
  });

  it("close answers a volume change waiting on the device with an error, and makes no further call", async () => {
    const t = tools();
    t.calls.call("self_volume_up", {}, "req_1");
    t.timers.advance(VOLUME_DEBOUNCE_MS);
    await settled();
    assert.equal(t.sent.length, 1, "the volume read went to the device");
    await t.calls.close("session closed");
    assert.deepEqual(t.answers, [["req_1", errorPayload(null, "session closed")]]);
    assert.equal(t.sent.length, 1, "no set_volume after close");
  });
});
