/**
 * The time bounds an Opus worker is held to (opus-worker-slot.ts), and why each is what it is.
 */

/** How long a stopping worker may take to finish its queued messages before it is terminated. */
export const STOP_GRACE_MS = 2000;

/**
 * The delay before replacing a worker when the one it replaces did not work (it did not
 * load, or ended before it answered a batch after one that did the same), ms: first, doubled
 * with each such worker in a row, and at most.
 */
export const RESTART_DELAY_MS = { first: 100, max: 5000 } as const;

/**
 * How long a ready worker that owes a batch may go without answering one before it is taken
 * as hung, ms. The longest batch a healthy worker gets is one event-loop turn's frames for
 * it: at most 3 encodes per session in flight (downstream.ts) and a decode or a sequence per
 * upstream datagram. 250 sessions' encodes on one worker at complexity 10 (~0.7 ms each,
 * docs/performance.md) take ~0.5 s; at the default complexity 5, ~0.12 s. Time is counted
 * from the worker's last answer, not from each batch's send, so a backlog of batches does
 * not add up. 2 s leaves four times the worst batch, and is still well under the 5 s
 * watchdog and the device's patience.
 */
export const WORKER_STALL_MS = 2000;

/**
 * How long a new worker may take to load libopus and say it is ready before it is taken as
 * hung, ms. Loading takes ~70-90 ms built and ~0.3-0.5 s from source through tsx on the 2-core
 * development machine; 10 s leaves room for a droplet's boot, where every instance starts
 * its workers at once, and still fails a first start before PM2 stops waiting for the
 * instance's ready (its `listen_timeout`, 15 s; deploy/ecosystem.ts). It also bounds what
 * a replacement that never loads holds: the frames sent to it meanwhile.
 */
export const WORKER_READY_MS = 10_000;
