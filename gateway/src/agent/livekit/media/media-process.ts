/**
 * Starts, watches and stops the gateway's media process (media/cmd/voice-media): one per
 * gateway instance, its child. It dies with the gateway (stdin EOF, and PR_SET_PDEATHSIG
 * for a SIGKILLed gateway).
 *
 * Bounded both ways: device audio for the child is dropped (`media_backlog`) once more than
 * `maxBacklogBytes` wait in its stdin; the child drops agent audio itself when the gateway
 * reads too slowly and reports the count (`counters` frames). Control frames are never
 * dropped. If the child exits, every session is told `disconnected` at once (its bridge
 * ends the session with goodbye, the device re-hellos) and the child is restarted with
 * backoff; joins while it is down fail at once. A child that stops answering pings
 * (hung, or stopped) is killed, which takes that same path (media-liveness.ts).
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  decodeFromMedia,
  encodeToMedia,
  FrameSplitter,
  type FromMedia,
  MEDIA_PROTOCOL_VERSION,
  type ToMedia,
} from "./ipc-codec.ts";
import { MediaLiveness } from "./media-liveness.ts";

export interface MediaProcessEvents {
  /** Dropped or refused input, by reason (metrics). */
  drop(reason: string): void;
  /** Counts the child reports (its own drops), by reason. */
  childCounts(counts: Readonly<Record<string, number>>): void;
  exited(code: number | null, signal: string | null, stderrTail: string): void;
  /** A ping's round trip, ms. */
  answered(roundTripMs: number): void;
  /** The child answered no ping for `silentMs` and is being killed. */
  hung(silentMs: number): void;
  started(pid: number): void;
}

/**
 * The media process's garbage collector target: the heap may grow to 1.5 times what is live
 * before a collection, instead of Go's default of twice. Most of a room's memory is the
 * media process's (1.5 of ~1.9 MB at 100 rooms); with 50 a room took 1.55 MB instead of
 * 1.92, for no CPU difference beyond the windows' range (docs/performance.md, "The media
 * process's memory").
 */
const MEDIA_GOGC = 50;

export interface MediaProcessOptions {
  readonly binary: string;
  /** GOMAXPROCS of the child. */
  readonly threads: number;
  /** Device audio is dropped once this many bytes wait for the child's stdin. */
  readonly maxBacklogBytes: number;
  /** First restart delay; doubles per quick failure up to maxRestartDelayMs. */
  readonly restartDelayMs: number;
  readonly maxRestartDelayMs: number;
  /** How long start-up may take before the child counts as failed. */
  readonly readyTimeoutMs: number;
  /** How often the running child is pinged. */
  readonly pingIntervalMs: number;
  /** A child that has answered no ping for this long is killed as hung. */
  readonly hangTimeoutMs: number;
  readonly events: MediaProcessEvents;
}

export type MediaFrameHandler = (frame: FromMedia) => void;

/** A child that ran this long before exiting was healthy: restart at the first delay. */
const HEALTHY_MS = 30_000;

export class MediaProcess {
  readonly #options: MediaProcessOptions;
  readonly #sessions = new Map<number, MediaFrameHandler>();
  #child: ChildProcess | undefined;
  #running = false;
  #closed = false;
  #nextSession = 1;
  #delay: number;
  #restartTimer: NodeJS.Timeout | undefined;
  #ready: Promise<void> | undefined;
  #corked = false;

  constructor(options: MediaProcessOptions) {
    this.#options = options;
    this.#delay = options.restartDelayMs;
  }

  /** Starts the child; resolves when it has said ready. */
  start(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("media process closed"));
    this.#ready ??= this.#spawn();
    return this.#ready;
  }

  get running(): boolean {
    return this.#running;
  }

  get pid(): number | undefined {
    return this.#running ? this.#child?.pid : undefined;
  }

  get sessions(): number {
    return this.#sessions.size;
  }

  /** Registers a session's frame handler; undefined while the child is not running. */
  open(handler: MediaFrameHandler): number | undefined {
    if (!this.#running) return undefined;
    const id = this.#nextSession;
    this.#nextSession = this.#nextSession >= 0xfffffffe ? 1 : this.#nextSession + 1;
    this.#sessions.set(id, handler);
    return id;
  }

  /**
   * Whether a session is registered with the running child. False once the child that had
   * it exited (its participant went with it), even after a new child has started.
   */
  isOpen(id: number): boolean {
    return this.#running && this.#sessions.has(id);
  }

  /** Forgets a session: frames for it are no longer delivered. */
  release(id: number): void {
    this.#sessions.delete(id);
  }

  /**
   * Sends one frame. Device audio is refused when the child's stdin is backed up; returns
   * false (and counts) when the frame was dropped.
   */
  send(m: ToMedia): boolean {
    return this.deliver(m) === undefined;
  }

  /** As `send`; returns why the frame was dropped (the reason counted), undefined when sent. */
  deliver(m: ToMedia): string | undefined {
    const stdin = this.#child?.stdin;
    if (!this.#running || !stdin?.writable)
      return this.#refuse(m.kind === "opus" ? "media_down_audio" : "media_down_control");
    if (m.kind === "opus" && stdin.writableLength > this.#options.maxBacklogBytes)
      return this.#refuse("media_backlog");
    let frame: Buffer;
    try {
      frame = encodeToMedia(m);
    } catch {
      return this.#refuse("media_frame_too_large");
    }
    // Frames written in one event-loop turn (a burst of datagrams, a data packet and its
    // audio) leave in one writev instead of one write(2) each.
    if (!this.#corked) {
      this.#corked = true;
      stdin.cork();
      setImmediate(() => {
        this.#corked = false;
        stdin.uncork();
      });
    }
    stdin.write(frame);
    return undefined;
  }

  #refuse(reason: string): string {
    this.#options.events.drop(reason);
    return reason;
  }

  /** Ends the child (stdin EOF: it leaves every room), SIGKILL after `graceMs`. */
  async close(graceMs = 3000): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    // "close" (after the pipes drain), not "exit": the supervisor's own close handler, which
    // reports the exit and releases every session, has run when this resolves.
    const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
    child.stdin?.end();
    const kill = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(kill);
  }

  /** For tests of the failure path: SIGKILL the child as a crash would. */
  killForTest(): void {
    this.#child?.kill("SIGKILL");
  }

  /** Pings the running child on a timer; kills it when it stops answering. */
  #watch(child: ChildProcess, liveness: MediaLiveness): NodeJS.Timeout {
    const timer = setInterval(() => {
      // Closing: the child, its stdin ended, leaves its rooms and reads no more pings; close()
      // bounds that itself.
      if (this.#closed) {
        clearInterval(timer);
        return;
      }
      const step = liveness.tick(performance.now());
      if (step?.kind === "ping") {
        // A control frame: written even when device audio is being refused for backlog.
        child.stdin?.write(encodeToMedia({ kind: "ping", session: 0, seq: step.seq }));
      } else if (step?.kind === "hung") {
        // Timers run before the pipes are read: an answer that came during a stall of the
        // gateway's own loop may wait unread. An immediate runs after this turn's reads.
        setImmediate(() => {
          if (this.#closed || !liveness.awaiting) return;
          clearInterval(timer);
          this.#options.events.drop("media_hung");
          this.#options.events.hung(Math.round(step.silentMs));
          child.kill("SIGKILL");
        });
      }
    }, this.#options.pingIntervalMs);
    timer.unref();
    return timer;
  }

  #spawn(): Promise<void> {
    // Only what the Go runtime reads: the child gets its token per join and needs none of
    // the gateway's secrets.
    const child = spawn(this.#options.binary, [], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { GOMAXPROCS: String(this.#options.threads), GOGC: String(MEDIA_GOGC) },
    });
    this.#child = child;
    const startedAt = Date.now();
    const splitter = new FrameSplitter();
    const stderr: string[] = [];
    let readyResolve: () => void = () => {};
    let readyReject: (err: Error) => void = () => {};
    const ready = new Promise<void>((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    const liveness = new MediaLiveness(this.#options.pingIntervalMs, this.#options.hangTimeoutMs);
    let probe: NodeJS.Timeout | undefined;
    const readyTimer = setTimeout(() => {
      readyReject(new Error(`media process not ready within ${this.#options.readyTimeoutMs} ms`));
      child.kill("SIGKILL");
    }, this.#options.readyTimeoutMs);

    child.stdin?.on("error", () => {}); // EPIPE when it dies: the exit handler deals with it
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr.push(chunk.toString());
      if (stderr.length > 20) stderr.shift();
    });
    // Set once the stream has lost its framing: what is still in the pipe is not frames.
    let corrupted = false;
    child.stdout?.on("data", (chunk: Buffer) => {
      if (corrupted) return;
      const { frames, corrupt } = splitter.push(chunk);
      for (const raw of frames) {
        const m = decodeFromMedia(raw.type, raw.session, raw.body);
        if ("error" in m) {
          this.#options.events.drop(`media_frame_${m.error}`);
          continue;
        }
        if (m.kind === "ready" && probe !== undefined) {
          // Said once per child: another would start a second liveness timer, which the
          // exit handler does not clear and which then judges the gone child hung.
          this.#options.events.drop("media_frame_unexpected_ready");
        } else if (m.kind === "ready" && m.version !== MEDIA_PROTOCOL_VERSION) {
          clearTimeout(readyTimer);
          this.#options.events.drop("media_version_mismatch");
          readyReject(
            new Error(
              `${this.#options.binary} speaks "${m.version}", this gateway "${MEDIA_PROTOCOL_VERSION}": rebuild it with npm run build`,
            ),
          );
          child.kill("SIGKILL");
        } else if (m.kind === "ready") {
          clearTimeout(readyTimer);
          this.#running = true;
          this.#options.events.started(child.pid ?? 0);
          probe = this.#watch(child, liveness);
          readyResolve();
        } else if (m.kind === "pong") {
          const roundTripMs = liveness.pong(m.seq, performance.now());
          if (roundTripMs !== undefined) this.#options.events.answered(roundTripMs);
        } else if (m.kind === "counters") this.#options.events.childCounts(m.counts);
        else {
          const handler = this.#sessions.get(m.session);
          // Released (a leave or join that timed out, answered late) or never opened.
          if (handler) handler(m);
          else this.#options.events.drop("media_frame_unknown_session");
        }
      }
      if (corrupt) {
        corrupted = true;
        this.#options.events.drop("media_stream_corrupt");
        child.kill("SIGKILL");
      }
    });
    child.once("error", (err) => {
      clearTimeout(readyTimer);
      readyReject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(readyTimer);
      clearInterval(probe);
      readyReject(new Error(`media process exited (${code ?? signal}) before ready`));
      this.#running = false;
      this.#options.events.exited(code, signal, stderr.join(""));
      // Every session's participant went with it.
      const lost = [...this.#sessions.entries()];
      this.#sessions.clear();
      for (const [session, handler] of lost)
        handler({ kind: "disconnected", session, reason: "media process exited" });
      if (this.#closed) return;
      this.#delay = Date.now() - startedAt > HEALTHY_MS ? this.#options.restartDelayMs : this.#delay;
      const delay = this.#delay;
      this.#delay = Math.min(this.#delay * 2, this.#options.maxRestartDelayMs);
      this.#restartTimer = setTimeout(() => {
        this.#ready = this.#spawn();
        this.#ready.catch(() => {}); // a failed start ends in another close, and another restart
      }, delay);
      this.#restartTimer.unref();
    });
    return ready;
  }
}
