/**
 * Many simulated devices under light load, for the multi-instance tests: each is in a
 * realtime-listening session (the echo agent returns every frame) and sends one frame per
 * `frameIntervalMs`, all from one timer. Like firmware, a device that receives `goodbye`
 * for its current session says hello again at once. The fleet records, per device, each
 * session (owner instance and boot, frames sent and heard back) and each outage: the time
 * from losing a session to the next hello reply.
 *
 * Options for the fault scenarios (issue 12): devices may arrive staggered, announce
 * another frame duration, and reconnect after losing the broker (then say hello again,
 * as a device does whose MQTT connection dropped).
 */
import { SimulatedDevice } from "../../../tools/sim/device.ts";
import { upstreamClip } from "../../../tools/sim/opus-frames.ts";

export interface SessionLog {
  readonly sessionId: string;
  /** `<instanceId>-<bootId>`: the owning process. */
  readonly owner: string;
  readonly instanceId: number;
  sent: number;
  received: number;
  goodbye?: string;
  /** performance.now() of the hello reply and of the first frame heard back. */
  readonly openedAt: number;
  firstAudioAt?: number;
}

export interface FleetOptions {
  /** Delay between two devices' hellos (staggered arrivals); default 0, all at once. */
  readonly staggerMs?: number;
  /** First device index (MAC); default 10,000. Two fleets on one broker need distinct ranges. */
  readonly indexBase?: number;
  /** Reconnect (every 1-2 s) when the broker connection drops, and say hello 1-2 s later. */
  readonly reconnect?: boolean;
  readonly frameDurationMs?: number;
}

export interface Member {
  readonly device: SimulatedDevice;
  readonly sessions: SessionLog[];
  /** Session lost (goodbye) -> next hello reply, ms. */
  readonly outages: number[];
  /** Last frame heard before a loss -> first frame heard after the next hello, ms. */
  readonly audioGaps: number[];
  helloFailures: number;
  lostAt?: number;
  lastAudioAt?: number;
  audioBeforeLoss?: number;
}

export function ownerOf(sessionId: string): { owner: string; instanceId: number } {
  const [id, boot] = sessionId.split("-");
  return { owner: `${id}-${boot}`, instanceId: Number(id) };
}

export class Fleet {
  readonly members: Member[] = [];
  #timer: NodeJS.Timeout | undefined;
  #closing = false;
  #lastTick = 0;
  /** Longest time between two frame ticks: how late the load generator itself ran. */
  longestTickMs = 0;
  readonly #silence = upstreamClip(1).silence;

  /** Connects `count` devices and brings each into a realtime session. */
  static async start(brokerUrl: string, count: number, options: FleetOptions = {}): Promise<Fleet> {
    const fleet = new Fleet();
    for (let i = 0; i < count; i++) {
      // No decoding of what comes back: the checks on every datagram stay, the CPU is spared.
      const device = new SimulatedDevice({
        brokerUrl,
        index: (options.indexBase ?? 10_000) + i,
        decodeEvery: 1e9,
        ...(options.frameDurationMs ? { frameDurationMs: options.frameDurationMs } : {}),
      });
      const m: Member = { device, sessions: [], outages: [], audioGaps: [], helloFailures: 0 };
      fleet.members.push(m);
      device.on("audio", () => fleet.#onAudio(m));
      device.on("server_goodbye", (reason) => fleet.#onGoodbye(m, reason));
      if (options.reconnect) device.on("mqtt_closed", () => fleet.#onBrokerLost(m));
    }
    try {
      await Promise.all(fleet.members.map((m) => m.device.connect()));
      const stagger = options.staggerMs ?? 0;
      await Promise.all(
        fleet.members.map(async (m, i) => {
          if (stagger > 0) await new Promise((r) => setTimeout(r, i * stagger));
          await fleet.#hello(m);
        }),
      );
    } catch (err) {
      await fleet.close();
      throw err;
    }
    return fleet;
  }

  current(m: Member): SessionLog | undefined {
    const s = m.sessions.at(-1);
    return s && s.goodbye === undefined && m.device.session?.sessionId === s.sessionId ? s : undefined;
  }

  /** One frame per device in session every `intervalMs` (keep it under the echo's 300 ms turn). */
  startAudio(intervalMs: number): void {
    this.#lastTick = performance.now();
    this.#timer = setInterval(() => {
      const now = performance.now();
      this.longestTickMs = Math.max(this.longestTickMs, now - this.#lastTick);
      this.#lastTick = now;
      for (const m of this.members) {
        const s = this.current(m);
        if (!s) continue;
        m.device.sendFrame(this.#silence);
        s.sent++;
      }
    }, intervalMs);
  }

  stopAudio(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Frames sent to and heard back from each owner (`<instanceId>-<bootId>`). */
  totals(): Map<string, { sent: number; received: number; sessions: number }> {
    const out = new Map<string, { sent: number; received: number; sessions: number }>();
    for (const m of this.members)
      for (const s of m.sessions) {
        const t = out.get(s.owner) ?? { sent: 0, received: 0, sessions: 0 };
        t.sent += s.sent;
        t.received += s.received;
        t.sessions++;
        out.set(s.owner, t);
      }
    return out;
  }

  /** Sessions per instance id, now. */
  spread(instances: number): number[] {
    const counts = Array.from({ length: instances }, () => 0);
    for (const m of this.members) {
      const s = this.current(m);
      if (s) counts[s.instanceId - 1] = (counts[s.instanceId - 1] ?? 0) + 1;
    }
    return counts;
  }

  /** Resolves once every device is in a session (after re-hellos), or rejects. */
  async allInSession(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.members.some((m) => !this.current(m))) {
      if (Date.now() > deadline)
        throw new Error(`${this.members.filter((m) => !this.current(m)).length} devices without a session`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Resolves once every device heard at least `frames` frames back in its current session. */
  async allHeardAudio(frames: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const behind = () => this.members.filter((m) => (this.current(m)?.received ?? 0) < frames).length;
    while (behind() > 0) {
      if (Date.now() > deadline) throw new Error(`${behind()} devices heard fewer than ${frames} frames`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.stopAudio();
    await Promise.all(this.members.map((m) => m.device.close()));
  }

  async #hello(m: Member): Promise<void> {
    for (let attempt = 0; attempt < 3 && !this.#closing; attempt++) {
      try {
        const reply = await m.device.hello();
        m.sessions.push({
          sessionId: reply.sessionId,
          ...ownerOf(reply.sessionId),
          sent: 0,
          received: 0,
          openedAt: performance.now(),
        });
        if (m.lostAt !== undefined) m.outages.push(performance.now() - m.lostAt);
        m.lostAt = undefined;
        m.device.listen("realtime");
        return;
      } catch {
        m.helloFailures++;
      }
    }
  }

  #onGoodbye(m: Member, reason: string): void {
    const s = m.sessions.at(-1);
    if (s) s.goodbye = reason;
    m.lostAt = performance.now();
    m.audioBeforeLoss = m.lastAudioAt;
    if (!this.#closing) void this.#hello(m);
  }

  /** The broker connection dropped: the session is lost; reconnect, then hello again. */
  #onBrokerLost(m: Member): void {
    const s = m.sessions.at(-1);
    if (s && s.goodbye === undefined) s.goodbye = "mqtt_closed";
    m.lostAt = performance.now();
    m.audioBeforeLoss = m.lastAudioAt;
    const retry = () => {
      if (this.#closing) return;
      setTimeout(
        () =>
          m.device.connect().then(
            // The hello comes with the next interaction, not with the reconnect itself (the
            // gateways are back 250-750 ms after the broker; a hello before any of them has
            // subscribed again would go nowhere, and the device would retry after 10 s).
            () => void sleepMs(1000 + Math.random() * 1000).then(() => this.#hello(m)),
            () => retry(),
          ),
        1000 + Math.random() * 1000,
      );
    };
    retry();
  }

  #onAudio(m: Member): void {
    const now = performance.now();
    const s = m.sessions.at(-1);
    if (s) {
      s.received++;
      s.firstAudioAt ??= now;
    }
    if (m.audioBeforeLoss !== undefined) {
      m.audioGaps.push(now - m.audioBeforeLoss);
      m.audioBeforeLoss = undefined;
    }
    m.lastAudioAt = now;
  }
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function percentiles(values: number[]): { p50: number; p99: number; max: number; n: number } {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99), max: at(1), n: s.length };
}

export function fmt(p: { p50: number; p99: number; max: number; n: number }): string {
  return `n=${p.n} p50 ${p.p50.toFixed(0)} ms, p99 ${p.p99.toFixed(0)} ms, max ${p.max.toFixed(0)} ms`;
}
