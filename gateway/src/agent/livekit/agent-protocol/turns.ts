/**
 * Turn framing: when the device gets `tts start` and `tts stop` around the agent's voice,
 * and which agent audio reaches it at all. Pure; time is passed in.
 *
 * Signals, in order of trust:
 * - `speech_created` (the deployed agent) and a *transition* into `speaking`, from its
 *   `agent_state_changed` message or from the `lk.agent.state` attribute that every
 *   LiveKit Agents 1.x agent sets: a turn starts. Both kinds arriving frame one turn once.
 * - leaving `speaking` (either source) or `music_playback_stopped`: the turn ends once its
 *   audio has gone quiet (END_QUIET_MS) or END_GRACE_MS after the signal at the latest,
 *   so the tail still in flight is played and the turn is not framed twice.
 * - Audio: voiced agent audio outside a turn starts one (it may overtake the signal). An
 *   agent that has never sent a signal gets today's guess: FALLBACK_SILENCE_MS of silence
 *   ends its turn. One that has, but whose end signal was lost (Agent A's 350 ms debounce
 *   drops quick changes), ends after SIGNALLED_SILENCE_MS of silence; so does a turn that
 *   a signal opened but no voice followed while the agent no longer says `speaking` (its
 *   attribute; its message only if it sets none): a `speech_created` that arrived after
 *   the state had already moved on.
 * - A device abort closes the gate: no agent audio reaches the device until the agent
 *   starts a new turn by a signal (or, for a signal-less agent, after it has been quiet for
 *   FALLBACK_SILENCE_MS, i.e. the interrupted reply has stopped). One change into speaking
 *   comes as up to three signals on two paths (the attribute over signalling; speech_created
 *   and agent_state_changed on the data channel), each path in order but not with the other,
 *   so those of the interrupted turn that had not come by the abort may still arrive: they
 *   are owed, and each is dropped when it comes (`late`), not taken for a new turn. A debt
 *   ends when its path shows it has moved on (a change to another state on it) or after
 *   LATE_SIGNAL_MS (AGENT_LATE_SIGNAL_MS); messages carry no speech id that could tell the turns apart.
 * - The agent leaving the room ends its open turn at once and forgets what it said about
 *   its state: the next agent starts as one that has sent no signal.
 */
import type { AgentState } from "./agent-messages.ts";

export const FALLBACK_SILENCE_MS = 400;
export const SIGNALLED_SILENCE_MS = 3000;
export const END_QUIET_MS = 250;
export const END_GRACE_MS = 1000;
/**
 * How long after an abort a signal the interrupted turn still owed is taken as that turn's
 * own, late on its path. Far above the paths' usual skew; below the user's next question
 * and the agent's answer to it, which a new turn after an abort waits for.
 */
export const LATE_SIGNAL_MS = 2000;

export type StateSource = "message" | "attribute";
/** What can say the agent started speaking; speech_created and "message" share a path. */
type Signal = StateSource | "speech_created";
const SIGNALS: readonly Signal[] = ["attribute", "message", "speech_created"];

export type TurnAction =
  | { readonly kind: "start"; readonly text: string | undefined }
  | { readonly kind: "end"; readonly by: "signal" | "silence" | "agent_left" }
  /** A signal of the turn an abort interrupted, late on its path: dropped (counted). */
  | { readonly kind: "late" };

type Phase = "idle" | "speaking" | "ending";

export class Turns {
  readonly #lateSignalMs: number;
  #phase: Phase = "idle";
  #gated = false;
  #signalled = false;
  #voicedInTurn = false;
  #lastVoicedAt = 0;
  #endingSince = 0;
  #startedAt = 0;
  readonly #lastState = new Map<StateSource, AgentState>();
  /** The signals that said speaking for the current (or last) turn's change into it. */
  readonly #said = new Set<Signal>();
  /** After an abort: the interrupted turn's signals not come yet, until #owedUntil. */
  readonly #owed = new Set<Signal>();
  #owedUntil = 0;

  /** `lateSignalMs`: how long after an abort a signal still owed is taken as late. */
  constructor(lateSignalMs = LATE_SIGNAL_MS) {
    this.#lateSignalMs = lateSignalMs;
  }

  get speaking(): boolean {
    return this.#phase !== "idle";
  }

  /** True after a device abort, until the agent starts a new turn. */
  get gated(): boolean {
    return this.#gated;
  }

  speechCreated(text: string, now: number): TurnAction[] {
    this.#signalled = true;
    return this.#open("speech_created", now, text || undefined);
  }

  agentState(source: StateSource, state: AgentState, now: number): TurnAction[] {
    this.#signalled = true;
    const previous = this.#lastState.get(source);
    this.#lastState.set(source, state);
    // A repeat says nothing new. The attribute comes as the full set on any attribute's
    // change, so its value repeats while the agent is in the same state; a repeated
    // non-speaking value ended a turn that speech_created or voice had opened ahead of it.
    if (previous === state && (state === "speaking" || source === "attribute")) return [];
    if (state === "speaking") return this.#open(source, now, undefined);
    // A change on a path comes after anything sent on it before: what the interrupted turn
    // owed on this path is not coming (A's debounce drops a change into speaking).
    if (previous !== state) {
      this.#owed.delete(source);
      if (source === "message") this.#owed.delete("speech_created");
    }
    return this.#endSignal(now);
  }

  musicStopped(now: number): TurnAction[] {
    this.#signalled = true;
    return this.#endSignal(now);
  }

  /** Device abort: the caller stops the device's playback (`tts stop`) itself. */
  abort(now: number): void {
    this.#phase = "idle";
    this.#gated = true;
    this.#lastVoicedAt = now;
    this.#owed.clear();
    for (const s of SIGNALS) if (!this.#said.has(s)) this.#owed.add(s);
    this.#owedUntil = now + this.#lateSignalMs;
  }

  /**
   * The last agent left the room. Its stored state goes: a `speaking` kept here would hold
   * a turn without voice open for good, since only that agent could have said otherwise. A
   * turn it had open ends now, as its voice went with it; what of that voice is still in
   * flight is dropped as after an abort, until it has been quiet for FALLBACK_SILENCE_MS or
   * the next agent signals a turn.
   */
  agentLeft(now: number): TurnAction[] {
    this.#lastState.clear();
    this.#signalled = false;
    // The next agent's signals are all its own: nothing of this one's turn is owed.
    this.#owed.clear();
    for (const s of SIGNALS) this.#said.add(s);
    if (this.#phase === "idle") return [];
    this.#gated = true;
    this.#lastVoicedAt = now;
    return this.#finish("agent_left");
  }

  /** One frame of agent audio; returns whether it goes to the device, and any framing. */
  audio(voiced: boolean, now: number): { readonly forward: boolean; readonly actions: TurnAction[] } {
    if (voiced) this.#lastVoicedAt = now;
    if (this.#gated) {
      this.#tickGate(now);
      return { forward: false, actions: [] };
    }
    if (this.#phase === "idle") {
      if (!voiced) return { forward: false, actions: [] };
      const actions = this.#begin(now, undefined, undefined);
      this.#voicedInTurn = true;
      return { forward: true, actions };
    }
    if (voiced) this.#voicedInTurn = true;
    const actions = this.tick(now);
    return { forward: actions.length === 0, actions };
  }

  /** Deadlines without audio (a transport that sends nothing in silence). */
  tick(now: number): TurnAction[] {
    if (this.#gated) {
      this.#tickGate(now);
      return [];
    }
    const quiet = now - this.#lastVoicedAt;
    if (this.#phase === "ending") {
      if (quiet >= END_QUIET_MS || now - this.#endingSince >= END_GRACE_MS) return this.#finish("signal");
    } else if (this.#phase === "speaking" && this.#voicedInTurn) {
      if (quiet >= (this.#signalled ? SIGNALLED_SILENCE_MS : FALLBACK_SILENCE_MS))
        return this.#finish("silence");
    } else if (this.#phase === "speaking" && !this.#anySpeaking()) {
      if (now - this.#startedAt >= SIGNALLED_SILENCE_MS) return this.#finish("silence");
    }
    return [];
  }

  /** When tick() may next have something to do; undefined: only on the next event. */
  nextDeadline(): number | undefined {
    if (this.#gated) return this.#signalled ? undefined : this.#lastVoicedAt + FALLBACK_SILENCE_MS;
    if (this.#phase === "ending")
      return Math.min(this.#lastVoicedAt + END_QUIET_MS, this.#endingSince + END_GRACE_MS);
    if (this.#phase === "speaking" && this.#voicedInTurn)
      return this.#lastVoicedAt + (this.#signalled ? SIGNALLED_SILENCE_MS : FALLBACK_SILENCE_MS);
    if (this.#phase === "speaking" && !this.#anySpeaking()) return this.#startedAt + SIGNALLED_SILENCE_MS;
    return undefined;
  }

  /**
   * Whether the agent still says it is speaking. The attribute, once seen, is the word that
   * counts: it is never debounced, while the message's debounce (350 ms) drops the change
   * out of a short reply and leaves the message at `speaking` for good, which held a
   * voiceless turn open with no deadline.
   */
  #anySpeaking(): boolean {
    return (this.#lastState.get("attribute") ?? this.#lastState.get("message")) === "speaking";
  }

  #tickGate(now: number): void {
    // Only a signal-less agent can be let through by silence; one with signals must say so.
    if (!this.#signalled && now - this.#lastVoicedAt >= FALLBACK_SILENCE_MS) this.#gated = false;
  }

  /** A signal into speaking: a late one of an interrupted turn, or a (new) turn's. */
  #open(signal: Signal, now: number, text: string | undefined): TurnAction[] {
    if (this.#gated && this.#owed.delete(signal) && now < this.#owedUntil) return [{ kind: "late" }];
    this.#gated = false;
    this.#owed.clear();
    return this.#begin(now, text, signal);
  }

  /** `signal`: what started it; undefined for voice. */
  #begin(now: number, text: string | undefined, signal: Signal | undefined): TurnAction[] {
    if (this.#phase === "speaking") {
      if (signal) this.#said.add(signal);
      return [];
    }
    // A new change into speaking, also one that resumes a turn still ending: each of its
    // signals is still to come, but the one here.
    this.#said.clear();
    if (signal) this.#said.add(signal);
    if (this.#phase === "ending") {
      this.#phase = "speaking"; // the same reply goes on
      return [];
    }
    this.#phase = "speaking";
    this.#voicedInTurn = false;
    this.#lastVoicedAt = now;
    this.#startedAt = now;
    return [{ kind: "start", text }];
  }

  #endSignal(now: number): TurnAction[] {
    if (this.#phase !== "speaking") return [];
    this.#phase = "ending";
    this.#endingSince = now;
    return this.tick(now);
  }

  #finish(by: "signal" | "silence" | "agent_left"): TurnAction[] {
    this.#phase = "idle";
    return [{ kind: "end", by }];
  }
}
