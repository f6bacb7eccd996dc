/** How the fake agents (fake-agents.ts) get into rooms: LiveKit's auto-dispatch, imitated. */
import { RoomServiceClient } from "livekit-server-sdk";
import type { LiveKitProcess } from "../../../tools/sim/livekit-process.ts";
import { type AgentVersion, FakeAgent } from "./fake-agents.ts";

export interface DispatcherOptions {
  /** Which version goes into a room; undefined: none (a room the test keeps agent-free). */
  readonly version: (roomName: string) => AgentVersion | undefined;
  /** How long its greeting lasts (ms of tone). */
  readonly greetingMs?: number;
}

/**
 * Auto-dispatch for the fakes: every room that appears on the server gets one agent of
 * the given version, as a worker without an agent name gets every new room.
 */
export class FakeAgentDispatcher {
  readonly #agents = new Map<string, FakeAgent | undefined>();
  readonly #joins = new Map<string, Promise<FakeAgent | undefined>>();
  readonly #lk: LiveKitProcess;
  readonly #rooms: RoomServiceClient;
  readonly #options: DispatcherOptions;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(lk: LiveKitProcess, options: DispatcherOptions) {
    this.#lk = lk;
    this.#options = options;
    this.#rooms = new RoomServiceClient(lk.httpUrl, lk.apiKey, lk.apiSecret);
  }

  start(): void {
    const poll = async () => {
      if (this.#stopped) return;
      const names = (await this.#rooms.listRooms().catch(() => [])).map((r) => r.name);
      for (const name of names) {
        if (this.#joins.has(name) || this.#stopped) continue;
        const version = this.#options.version(name);
        const agent = version
          ? FakeAgent.for(name, { version, greetingMs: this.#options.greetingMs })
          : undefined;
        this.#agents.set(name, agent);
        this.#joins.set(
          name,
          (agent?.connect(this.#lk) ?? Promise.resolve()).then(
            () => agent,
            () => undefined,
          ),
        );
      }
      if (!this.#stopped) this.#timer = setTimeout(() => void poll(), 100);
    };
    void poll();
  }

  /** The agent sent into `room`, once it has joined (undefined: it refused the room). */
  async agentIn(room: string, timeoutMs = 10_000): Promise<FakeAgent | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#joins.has(room)) {
      if (Date.now() > deadline) throw new Error(`no agent was sent into ${room}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return this.#joins.get(room);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    // Leaving first also ends the joins still waiting for a device that never came. Bounded:
    // a join racing its room's deletion may never settle in the SDK.
    const bounded = (p: Promise<unknown> | undefined) =>
      Promise.race([p, new Promise((r) => setTimeout(r, 3000).unref())]).catch(() => {});
    await Promise.all([...this.#agents.values()].map((a) => bounded(a?.leave())));
    await Promise.all([...this.#joins.values()].map((j) => bounded(j)));
  }
}
