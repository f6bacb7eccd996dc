/**
 * MCP tool calls the agent makes on the device, matched to the device's answers by the
 * JSON-RPC id. Bounded: at most `max` calls pending per session, each with a timeout;
 * close rejects them all. Calls are sent in the order they arrive, so volume changes
 * apply in order.
 */
import type { JsonObject } from "../../protocol/messages.ts";

export interface McpOutcome {
  readonly ok: boolean;
  readonly result: JsonObject | null;
  readonly error: string | null;
}

interface Pending {
  readonly resolve: (o: McpOutcome) => void;
  readonly timer: NodeJS.Timeout;
}

export class McpCalls {
  readonly #pending = new Map<number, Pending>();
  readonly #max: number;
  readonly #timeoutMs: number;
  // Small positive ints: some firmware treats JSON-RPC ids as int32.
  #nextId = 1;

  constructor(max = 16, timeoutMs = 5000) {
    this.#max = max;
    this.#timeoutMs = timeoutMs;
  }

  get pending(): number {
    return this.#pending.size;
  }

  /** Builds the JSON-RPC request and resolves when the device answers (or fails). */
  call(name: string, args: JsonObject, send: (payload: JsonObject) => void): Promise<McpOutcome> {
    if (this.#pending.size >= this.#max) {
      return Promise.resolve({ ok: false, result: null, error: "too many pending MCP calls" });
    }
    const id = this.#nextId++;
    if (this.#nextId > 0x7fffffff) this.#nextId = 1;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve({ ok: false, result: null, error: "device did not answer in time" });
      }, this.#timeoutMs);
      this.#pending.set(id, { resolve, timer });
      send({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } });
    });
  }

  /** A device `mcp` payload; returns true if it answered one of our calls. */
  answer(payload: JsonObject): boolean {
    const id = payload.id;
    if (typeof id !== "number") return false;
    const p = this.#pending.get(id);
    if (!p) return false;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    const error = payload.error;
    if (error !== undefined && error !== null) {
      const message =
        typeof error === "object" && !Array.isArray(error) ? String(error.message ?? "error") : String(error);
      p.resolve({ ok: false, result: null, error: message });
    } else {
      const result = payload.result;
      p.resolve({
        ok: true,
        result: typeof result === "object" && result !== null && !Array.isArray(result) ? result : null,
        error: null,
      });
    }
    return true;
  }

  rejectAll(reason: string): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.resolve({ ok: false, result: null, error: reason });
    }
    this.#pending.clear();
  }
}
