/**
 * The agent's tool calls carried out on the device (names mapped in
 * agent-protocol/tools.ts): plain calls go straight to the device's MCP server; volume
 * up/down steps are debounced, summed and applied to the last known volume, serialised so
 * changes apply in order. Every call that carried a request id gets one answer.
 */
import type { JsonObject } from "../../protocol/messages.ts";
import {
  clampVolume,
  GET_STATUS_TOOL,
  planTool,
  SET_VOLUME_TOOL,
  VOLUME_DEBOUNCE_MS,
  VolumeSteps,
  volumeFromStatus,
} from "./agent-protocol/tools.ts";
import type { McpCalls } from "./mcp-calls.ts";

/** The volume assumed when the device does not report one (xiaozhi's default is 70). */
const UNKNOWN_VOLUME = 70;

export interface ToolCallPorts {
  /** A JSON-RPC request to the device (wrapped as `{type:"mcp", payload}`). */
  toDevice(payload: JsonObject): void;
  /** The device's answer (or our error) for the agent's request id. */
  answer(payload: JsonObject, requestId: string): void;
}

export class ToolCalls {
  readonly #mcp: McpCalls;
  readonly #ports: ToolCallPorts;
  readonly #steps = new VolumeSteps();
  #lastVolume: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(mcp: McpCalls, ports: ToolCallPorts) {
    this.#mcp = mcp;
    this.#ports = ports;
  }

  call(name: string, args: JsonObject, requestId: string | undefined): void {
    if (this.#closed) return;
    const plan = planTool(name, args);
    if (plan.kind === "call") {
      void this.#device(plan.tool, plan.arguments).then((payload) => this.#answer(payload, requestId));
      return;
    }
    this.#steps.add(plan.delta, requestId);
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      const { delta, requestIds } = this.#steps.take();
      this.#chain = this.#chain.then(() => this.#step(delta, requestIds));
    }, VOLUME_DEBOUNCE_MS);
  }

  /** Pending device calls are settled by McpCalls.rejectAll; this stops the debounce. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  /** BUNNY's volume up/down: read the volume (once, then cached), set it moved by the sum. */
  async #step(delta: number, requestIds: readonly (string | undefined)[]): Promise<void> {
    if (this.#closed) return;
    const current =
      this.#lastVolume ?? volumeFromStatus(await this.#device(GET_STATUS_TOOL, {})) ?? UNKNOWN_VOLUME;
    const payload = await this.#device(SET_VOLUME_TOOL, { volume: clampVolume(current + delta) });
    for (const id of requestIds) this.#answer(payload, id);
  }

  /** One device call; the volume cache follows what the device confirmed. */
  async #device(tool: string, args: JsonObject): Promise<JsonObject> {
    const setting = tool === SET_VOLUME_TOOL && typeof args.volume === "number" ? args.volume : undefined;
    if (setting !== undefined) this.#lastVolume = undefined;
    const payload = await this.#mcp.call(tool, args, (p) => this.#ports.toDevice(p));
    if (payload.error === undefined) {
      if (setting !== undefined) this.#lastVolume = setting;
      else if (tool === GET_STATUS_TOOL) this.#lastVolume = volumeFromStatus(payload) ?? this.#lastVolume;
    }
    return payload;
  }

  #answer(payload: JsonObject, requestId: string | undefined): void {
    if (!this.#closed && requestId !== undefined) this.#ports.answer(payload, requestId);
  }
}
