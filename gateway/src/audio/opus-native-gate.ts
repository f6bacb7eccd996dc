/**
 * When an Opus worker thread may be terminated: only while it is outside @discordjs/opus.
 *
 * `Worker.terminate()` marks the thread's environment as stopping at once, from the main
 * thread, whatever the worker is doing. A call into @discordjs/opus that is running then
 * (or starts before V8 has stopped the thread's JavaScript) finds every further Node-API
 * call refused: making its result buffer (`Buffer::Copy` in Encode and Decode), reading
 * its arguments (`ToNumber`), wrapping a new codec (`napi_wrap`). Its error path then calls
 * `Napi::Error::ThrowAsJavaScriptException`, whose `napi_throw` is refused too, and the
 * addon is built without C++ exceptions (NAPI_DISABLE_CPP_EXCEPTIONS), so node-addon-api
 * treats that as fatal: "FATAL ERROR: Error::ThrowAsJavaScriptException napi_throw", and
 * abort() of the whole process, every session of the instance with it. Terminating a
 * worker that codes without pause aborted the process on the first try, every time
 * (docs/reliability.md, rule 10).
 *
 * So each call into the addon passes this gate, one 32-bit word in a SharedArrayBuffer
 * the worker gets from its slot: the worker marks itself inside before each call and
 * outside after it, and the slot closes the gate (only while the worker is outside) before
 * it terminates the worker. Once closed, the worker makes no further call, and JavaScript
 * alone is safe to stop. A worker stuck inside libopus for good keeps the gate open for
 * good: it is never terminated (it could not be stopped there anyway, and would abort the
 * process the moment it came back), and is terminated if it ever comes out.
 *
 * The process's exit (`process.exit`, an uncaught exception) terminates every worker
 * thread the same way, and aborted just as surely a process whose workers were coding: so
 * the gateway closes every gate before it exits (`closeNativeGatesNow`, ops/exit.ts).
 */

/** What the gate's word holds; exported for tests' stand-in workers, which cannot import this. */
export const GATE = {
  /** The worker runs JavaScript (or waits for a message): it may enter the addon, or be closed. */
  OUTSIDE: 0,
  /** The worker is in a call into the addon. */
  INSIDE: 1,
  /** The slot closed the gate: the worker makes no further call, and may be terminated. */
  CLOSED: 2,
  /** As INSIDE, and the slot waits to close the gate: the worker closes it as it comes out, and notifies. */
  AWAITED: 3,
} as const;
const { OUTSIDE, INSIDE, CLOSED, AWAITED } = GATE;

/** One word (Int32Array of length 1) over a SharedArrayBuffer, shared by a slot and its worker. */
export type NativeGate = Int32Array;

export function newNativeGate(): NativeGate {
  return new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
}

/**
 * Worker side: marks the thread inside the addon. False when the gate is closed: the
 * thread is being terminated, and must not call the addon again.
 */
export function enterNative(gate: NativeGate): boolean {
  return Atomics.compareExchange(gate, 0, OUTSIDE, INSIDE) === OUTSIDE;
}

/** Worker side: the call into the addon has returned (or thrown). */
export function leaveNative(gate: NativeGate): void {
  // Only the worker moves the gate away from INSIDE or AWAITED. AWAITED: the slot waits to
  // close it, so it is closed here, not opened for the slot to close. Opened, a worker
  // coding a batch would enter its next call a microsecond later, long before the slot's
  // thread wakes up, and the slot would wait call after call until the batch ended. The
  // notify (a lock in V8) is paid only when the slot is waiting.
  if (Atomics.compareExchange(gate, 0, INSIDE, OUTSIDE) === AWAITED) {
    Atomics.store(gate, 0, CLOSED);
    Atomics.notify(gate, 0);
  }
}

/**
 * Slot side: resolves once the gate is closed, the worker outside the addon and kept out
 * of it for good; it may then be terminated. Never resolves while the worker is stuck in
 * one call: callers that must go on bound their wait themselves. A pending wait does not
 * keep the process alive.
 */
export async function closeNativeGate(gate: NativeGate): Promise<void> {
  for (;;) {
    const was = Atomics.compareExchange(gate, 0, OUTSIDE, CLOSED);
    if (was === OUTSIDE || was === CLOSED) return;
    // Inside: ask to be told when it comes out. If it came out meanwhile, the gate no longer
    // holds AWAITED, the wait returns at once, and the next turn closes it.
    if (was === INSIDE) Atomics.compareExchange(gate, 0, INSIDE, AWAITED);
    const waited = Atomics.waitAsync(gate, 0, AWAITED);
    if (waited.async) await waited.value;
  }
}

/**
 * Slot side, as the process exits (OpusPool.closeGatesForExit): closes every gate of
 * `gates`, blocking the calling thread while its worker is inside the addon, `maxMs` at
 * most for all of them together. Returns how many are left open: workers still inside a
 * call. Synchronous because an exit runs no further turn of the event loop; a call into
 * libopus takes well under a millisecond, so a gate still open after `maxMs` is a worker
 * stuck in libopus. Timed on the real monotonic clock, as the wait itself is.
 */
export function closeNativeGatesNow(gates: Iterable<NativeGate>, maxMs: number): number {
  const now = () => performance.now();
  const deadline = now() + maxMs;
  let open = 0;
  for (const gate of gates) {
    for (;;) {
      const was = Atomics.compareExchange(gate, 0, OUTSIDE, CLOSED);
      if (was === OUTSIDE || was === CLOSED) break;
      if (was === INSIDE) Atomics.compareExchange(gate, 0, INSIDE, AWAITED);
      const left = deadline - now();
      if (left <= 0) {
        open++;
        break;
      }
      // Woken by the worker as it leaves the call (leaveNative closes the gate then), or at
      // the deadline; a gate that no longer holds AWAITED returns at once.
      Atomics.wait(gate, 0, AWAITED, left);
    }
  }
  return open;
}
