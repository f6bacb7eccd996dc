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
 */

/** What the gate's word holds; exported for tests' stand-in workers, which cannot import this. */
export const GATE = {
  /** The worker runs JavaScript (or waits for a message): it may enter the addon, or be closed. */
  OUTSIDE: 0,
  /** The worker is in a call into the addon. */
  INSIDE: 1,
  /** The slot closed the gate: the worker makes no further call, and may be terminated. */
  CLOSED: 2,
  /** As INSIDE, and the slot waits for the worker to come out (it notifies on the way). */
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
  // Only the worker moves the gate away from INSIDE or AWAITED, so this exchange loses
  // nothing; the notify (a lock in V8) is paid only when the slot is waiting.
  if (Atomics.exchange(gate, 0, OUTSIDE) === AWAITED) Atomics.notify(gate, 0);
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
