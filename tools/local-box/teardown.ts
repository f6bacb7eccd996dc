/**
 * The local box's teardown: what it has started so far, each with how to stop it, stopped
 * last first when a stop comes (tools/local-box.ts).
 */

/** Start-up was cut short by a stop (a signal): what it had started is being torn down. */
export class StopRequested extends Error {
  constructor() {
    super("stopped during start-up");
  }
}

interface Started {
  /** What it is, for the "stopping: ..." line; "" for what needs no mention. */
  readonly label: string;
  /** Waits for the step that starts it to settle, then stops what it started. */
  readonly stop: () => Promise<void>;
}

/**
 * What the box has started so far, each with how to stop it, and the one teardown that
 * stops exactly that, in reverse order, whenever a stop comes: a signal (Ctrl-C, `npm stop`'s
 * SIGTERM, a closed terminal's SIGHUP) at any point of start-up or after it, a failed start,
 * or the end of --duration. The signal handlers are set before anything is started: set
 * only once start-up was done, a signal during it (the bundle build, PM2's start, device
 * provisioning) took Node's default action, and the box ended at once with its PM2 daemon,
 * gateways and pid file left behind.
 */
export class Teardown {
  readonly #started: Started[] = [];
  #stopping = false;

  get stopping(): boolean {
    return this.#stopping;
  }

  /**
   * Runs one start-up step that starts something, and keeps `undo` to stop it; `undo` is
   * given what the step returned, or undefined if it failed (PM2's start may leave a daemon
   * up even then). No step begins once a stop was asked, and start-up goes no further after
   * one (both throw StopRequested). A step under way when the stop comes is awaited before
   * it is undone: `pm2 kill` while `pm2 start` is still starting the daemon would let that
   * daemon come up after the kill.
   */
  async start<T>(
    label: string,
    step: () => T | Promise<T>,
    undo: (value: T | undefined) => Promise<void> | void,
  ): Promise<T> {
    this.check();
    const running = Promise.resolve().then(step);
    const settled = running.then(
      (value): T | undefined => value,
      () => undefined,
    );
    this.#started.push({ label, stop: async () => undo(await settled) });
    const value = await running;
    this.check();
    return value;
  }

  /** Keeps `undo` for something this process has just started itself, synchronously. */
  started(label: string, undo: () => void | Promise<void>): void {
    this.check();
    this.#started.push({ label, stop: async () => undo() });
  }

  /** Throws StopRequested once a stop was asked: start-up stops where it is. */
  check(): void {
    if (this.#stopping) throw new StopRequested();
  }

  /**
   * Stops everything started so far, last first, then exits with `code`, or 1 if stopping
   * something failed. Only the first call acts: a second signal during the teardown (Ctrl-C
   * again, or the SIGHUP that follows a SIGTERM when a terminal closes) is ignored, since
   * ending then would leave what is not yet stopped (PM2's daemon and gateways) running. A
   * box that will not stop ends with `kill -9`, and the next `npm stop` or `npm start`
   * stops what it left (leftovers.ts).
   */
  async stop(code: number): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const labels = [...new Set(this.#started.map((s) => s.label).reverse())].filter((l) => l !== "");
    console.log(`\nstopping${labels.length ? `: ${labels.join(", ")}` : " (nothing started yet)"}...`);
    let failed = false;
    for (const started of [...this.#started].reverse()) {
      try {
        await started.stop();
      } catch (err) {
        // The rest must still be stopped.
        failed = true;
        console.error(`stopping ${started.label || "the box"} failed: ${(err as Error).message}`);
      }
    }
    process.exit(failed ? 1 : code);
  }
}
