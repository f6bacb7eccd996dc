/**
 * Agent B's tool calls, as a fake agent (fake-agents.ts) makes them: `function_call` on
 * topic `mcp_function_call` with request id `req_<ms>`, each waiting 10 s for the gateway's
 * `mcp` answer with that request id (else the oldest pending call's).
 */
import type { JsonMessage } from "./fake-agents.ts";

const TOOL_WAIT_MS = 10_000;

export class FakeToolCalls {
  readonly #pending = new Map<string, (payload: unknown) => void>();
  readonly #publish: (m: JsonMessage, topic: string) => Promise<void>;

  /** `publish`: sends a data message on a topic as the agent does. */
  constructor(publish: (m: JsonMessage, topic: string) => Promise<void>) {
    this.#publish = publish;
  }

  /**
   * Agent B's tool call on topic `mcp_function_call`. With `wait`, resolves with the
   * `payload` of the gateway's answer, or `{error:"timeout"}` after 10 s, as B does.
   */
  async call(name: string, args: JsonMessage = {}, wait = false): Promise<unknown> {
    // B's request ids are milliseconds; two calls in one millisecond would collide there too.
    await new Promise((r) => setTimeout(r, 2));
    const requestId = `req_${Date.now()}`;
    const answer = wait
      ? new Promise<unknown>((resolve) => {
          const timer = setTimeout(() => {
            this.#pending.delete(requestId);
            resolve({ error: "timeout", message: "No response received from device" });
          }, TOOL_WAIT_MS);
          this.#pending.set(requestId, (payload) => {
            clearTimeout(timer);
            resolve(payload);
          });
        })
      : undefined;
    await this.#publish(
      {
        type: "function_call",
        function_call: { name, arguments: args },
        timestamp: new Date().toISOString(),
        request_id: requestId,
      },
      "mcp_function_call",
    );
    return answer;
  }

  /** The gateway's `mcp` message: settles the call it answers. */
  answer(m: JsonMessage): void {
    const id = typeof m.request_id === "string" ? m.request_id : undefined;
    const resolve = (id && this.#pending.get(id)) || this.#pending.values().next().value;
    if (!resolve) return;
    for (const [k, v] of this.#pending) if (v === resolve) this.#pending.delete(k);
    resolve(m.payload);
  }
}
