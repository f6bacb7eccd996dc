/**
 * The agent's tool calls carried out on the device (names mapped in
 * agent-protocol/tools.ts): plain calls go straight to the device's MCP server; volume
 * up/down steps are batched (VOLUME_DEBOUNCE_MS from a batch's first step, or at once when
 * it is full), summed and applied to the volume the device reports for that batch,
 * serialised so changes apply in order; steps beyond MAX_VOLUME_STEPS_PENDING are refused
 * with an error answer, counted.
 * Every call that carried a request id gets one answer, also when the session closes with
 * it pending (an error, before close() resolves).
 */
import type { JsonObject } from "../../protocol/messages.ts";
import { type SessionTimer, type StartTimer, startNodeTimer } from "../../session/timer.ts";
import {
  clampVolume,
  GET_STATUS_TOOL,
  planTool,
  SET_VOLUME_TOOL,
  VOLUME_DEBOUNCE_MS,
  VolumeSteps,
  volumeFromStatus,
} from "./agent-protocol/tools.ts";
import { errorPayload, type McpCalls } from "./mcp-calls.ts";

/** The volume assumed when the device answers its status without one (xiaozhi's default is 70). */
const UNKNOWN_VOLUME = 70;

export interface ToolCallPorts {
  /** A JSON-RPC request to the device (wrapped as `{type:"mcp", payload}`). */
  toDevice(payload: JsonObject): void;
  /** The device's answer (or our error) for the agent's request id. */
  answer(payload: JsonObject, requestId: string): void;
  /** Counts a call refused here (`agent_volume_steps_overflow`). */
  drop(reason: string): void;
}

export class ToolCalls {
  readonly #mcp: McpCalls;
  readonly #ports: ToolCallPorts;
  readonly #steps = new VolumeSteps();
  readonly #startTimer: StartTimer;
  #timer: SessionTimer | undefined;
  #chain: Promise<void> = Promise.resolve();
  /** Calls whose answer has not gone to ports.answer yet; close() waits for them. */
  readonly #unanswered = new Set<Promise<void>>();
  /** Set by close(): no new call is taken, and steps not yet at the device are not sent. */
  #closeReason: string | undefined;
  #closed = false;

  /** `startTimer`: injected for tests, as the bridge's own timers. */
  constructor(mcp: McpCalls, ports: ToolCallPorts, startTimer: StartTimer = startNodeTimer) {
    this.#mcp = mcp;
    this.#ports = ports;
    this.#startTimer = startTimer;
  }

  call(name: string, args: JsonObject, requestId: string | undefined): void {
    if (this.#closeReason !== undefined) return;
    const plan = planTool(name, args);
    if (plan.kind === "call") {
      this.#track(
        this.#device(plan.tool, plan.arguments).then((payload) => this.#answer(payload, requestId)),
      );
      return;
    }
    switch (this.#steps.add(plan.delta, requestId)) {
      case "refused":
        this.#ports.drop("agent_volume_steps_overflow");
        return this.#answer(errorPayload(null, "too many volume changes pending"), requestId);
      case "first":
        this.#timer = this.#startTimer(VOLUME_DEBOUNCE_MS, () => this.#flush());
        return;
      case "full":
        return this.#flush();
      case "added":
        return;
    }
  }

  /**
   * Stops taking calls and answers every call still pending with an error: the device
   * calls through McpCalls.rejectAll, the volume steps here. Resolves once every answer
   * has gone to ports.answer, so the caller can send them before it leaves the room;
   * nothing is answered after that.
   */
  async close(reason: string): Promise<void> {
    if (this.#closeReason !== undefined) return;
    this.#closeReason = reason;
    this.#timer?.cancel();
    const { requestIds } = this.#steps.take();
    for (const id of requestIds) this.#answer(errorPayload(null, reason), id);
    this.#mcp.rejectAll(reason);
    await Promise.allSettled(this.#unanswered);
    this.#closed = true;
  }

  /** The batch goes to the device, after the batches before it. */
  #flush(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    const { delta, requestIds } = this.#steps.take();
    this.#chain = this.#chain.then(async () => {
      try {
        await this.#step(delta, requestIds);
      } finally {
        this.#steps.answered(requestIds.length);
      }
    });
    this.#track(this.#chain);
  }

  /**
   * BUNNY's volume up/down: read the volume, set it moved by the sum. Read for every batch,
   * never remembered from an earlier one (BUNNY caches it): the device's own volume buttons
   * change it and tell no one (xiaozhi firmware's MCP server only answers calls), so a
   * remembered 70 turned "louder" on a device its user had turned down to 30 into 80.
   */
  async #step(delta: number, requestIds: readonly (string | undefined)[]): Promise<void> {
    const answerAll = (payload: JsonObject) => {
      for (const id of requestIds) this.#answer(payload, id);
    };
    // Closing: the answer is the error, and the device gets no further call.
    if (this.#closeReason !== undefined) return answerAll(errorPayload(null, this.#closeReason));
    const status = await this.#device(GET_STATUS_TOOL, {});
    if (this.#closeReason !== undefined) return answerAll(errorPayload(null, this.#closeReason));
    // A read that failed (timeout, overload, the device's error) tells nothing of the
    // volume: a step set from the guess below could turn a "quieter" into a jump up.
    if (status.error !== undefined) return answerAll(status);
    const current = volumeFromStatus(status) ?? UNKNOWN_VOLUME;
    answerAll(await this.#device(SET_VOLUME_TOOL, { volume: clampVolume(current + delta) }));
  }

  #track(answered: Promise<void>): void {
    this.#unanswered.add(answered);
    const done = () => void this.#unanswered.delete(answered);
    answered.then(done, done);
  }

  /** One device call. */
  #device(tool: string, args: JsonObject): Promise<JsonObject> {
    return this.#mcp.call(tool, args, (p) => this.#ports.toDevice(p));
  }

  #answer(payload: JsonObject, requestId: string | undefined): void {
    if (!this.#closed && requestId !== undefined) this.#ports.answer(payload, requestId);
  }
}
