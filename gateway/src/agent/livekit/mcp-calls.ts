/**
 * MCP tool calls made on the device for the agent, matched to the device's answers by the
 * JSON-RPC id. Bounded: at most `max` calls pending per session, each with a timeout;
 * close settles them all. Every call resolves with a JSON-RPC response object: the
 * device's own, or one with an `error` that we made (timeout, overload, close), so the
 * agent always gets an answer it can read.
 */
import type { JsonObject } from "../../protocol/messages.ts";

interface Pending {
  readonly resolve: (payload: JsonObject) => void;
  readonly timer: NodeJS.Timeout;
}

/** JSON-RPC "server error" range: our own failures, never the device's. */
const GATEWAY_ERROR = -32000;

export function errorPayload(id: number | null, message: string): JsonObject {
  return { jsonrpc: "2.0", id, error: { code: GATEWAY_ERROR, message } };
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

  /** Sends `tools/call` and resolves with the device's answer (or our error). */
  call(name: string, args: JsonObject, send: (payload: JsonObject) => void): Promise<JsonObject> {
    if (this.#pending.size >= this.#max) {
      return Promise.resolve(errorPayload(null, "too many pending MCP calls"));
    }
    const id = this.#nextId++;
    if (this.#nextId > 0x7fffffff) this.#nextId = 1;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve(errorPayload(id, "device did not answer in time"));
      }, this.#timeoutMs);
      this.#pending.set(id, { resolve, timer });
      try {
        send({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } });
      } catch {
        // A call that never left is answered at once: the agent still gets its answer, and
        // its place and timer are not held for the timeout.
        this.#pending.delete(id);
        clearTimeout(timer);
        resolve(errorPayload(id, "could not send the call to the device"));
      }
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
    p.resolve(payload);
    return true;
  }

  rejectAll(reason: string): void {
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.resolve(errorPayload(id, reason));
    }
    this.#pending.clear();
  }
}
