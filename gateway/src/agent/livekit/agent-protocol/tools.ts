/**
 * The agent's tool-call names mapped to the device's MCP tools (device-protocol.md 5.3),
 * and the volume arithmetic of `self_volume_up/down`. Pure.
 */
import type { JsonObject } from "../../../protocol/messages.ts";

/** One agent call becomes a plain device call, or a relative volume step (debounced). */
export type ToolPlan =
  | { readonly kind: "call"; readonly tool: string; readonly arguments: JsonObject }
  | { readonly kind: "volume_step"; readonly delta: number };

const NAMES: Readonly<Record<string, string>> = {
  self_set_volume: "self.audio_speaker.set_volume",
  self_get_volume: "self.get_device_status",
  self_mute: "self.audio_speaker.mute",
  self_unmute: "self.audio_speaker.unmute",
  self_set_light_color: "self.led.set_color",
  self_get_battery_status: "self.battery.get_status",
  self_set_light_mode: "self.led.set_mode",
  self_set_rainbow_speed: "self.led.set_rainbow_speed",
};

export const DEFAULT_VOLUME_STEP = 10;
/**
 * Volume steps that arrive within this window from a batch's first step are summed into one
 * change (as BUNNY). The window is not restarted by later steps: steps that keep coming
 * less than 300 ms apart would otherwise never reach the device.
 */
export const VOLUME_DEBOUNCE_MS = 300;
/** A batch holding this many steps goes to the device at once. */
export const MAX_VOLUME_BATCH = 16;
/**
 * Steps not answered yet, batched or at the device (one batch there, one waiting behind it):
 * a step beyond this is answered at once with an error (McpCalls' cap does not see steps,
 * which become device calls only when their batch goes).
 */
export const MAX_VOLUME_STEPS_PENDING = 2 * MAX_VOLUME_BATCH;
export const GET_STATUS_TOOL = "self.get_device_status";
export const SET_VOLUME_TOOL = "self.audio_speaker.set_volume";

export function planTool(name: string, args: JsonObject): ToolPlan {
  if (name === "self_volume_up" || name === "self_volume_down") {
    const raw = args.step;
    const step =
      typeof raw === "number" && Number.isFinite(raw)
        ? Math.min(100, Math.max(1, Math.round(raw)))
        : DEFAULT_VOLUME_STEP;
    return { kind: "volume_step", delta: name === "self_volume_up" ? step : -step };
  }
  // Unknown names go to the device unchanged, as BUNNY does. Own keys only: "constructor"
  // would find Object itself.
  const tool = (Object.hasOwn(NAMES, name) ? NAMES[name] : undefined) ?? name;
  if (tool === SET_VOLUME_TOOL && typeof args.volume === "number") {
    return { kind: "call", tool, arguments: { ...args, volume: clampVolume(args.volume) } };
  }
  return { kind: "call", tool, arguments: args };
}

export function clampVolume(v: number): number {
  return Number.isFinite(v) ? Math.max(0, Math.min(100, Math.round(v))) : 0;
}

/**
 * The speaker volume in a `self.get_device_status` answer: its result's first text content
 * is a JSON document with `audio_speaker.volume` (xiaozhi firmware). Undefined if absent.
 */
export function volumeFromStatus(payload: JsonObject): number | undefined {
  const result = payload.result;
  if (typeof result !== "object" || result === null || Array.isArray(result)) return undefined;
  const content = result.content;
  if (!Array.isArray(content)) return undefined;
  const first = content[0];
  if (typeof first !== "object" || first === null || Array.isArray(first)) return undefined;
  if (typeof first.text !== "string") return undefined;
  try {
    const doc = JSON.parse(first.text) as { audio_speaker?: { volume?: unknown }; volume?: unknown };
    const v = doc.audio_speaker?.volume ?? doc.volume;
    return typeof v === "number" && Number.isFinite(v) ? clampVolume(v) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What `VolumeSteps.add` made of a step: the first of a new batch (its window starts now),
 * one more in the open batch, the one that filled the batch (it goes now), or refused
 * (MAX_VOLUME_STEPS_PENDING reached: to be answered at once with an error).
 */
export type StepAdded = "first" | "added" | "full" | "refused";

/**
 * Volume steps in their batch: summed, with the request ids of every call they came from,
 * so each call gets the one answer; bounded by MAX_VOLUME_BATCH per batch and
 * MAX_VOLUME_STEPS_PENDING until answered.
 */
export class VolumeSteps {
  #delta = 0;
  #requestIds: (string | undefined)[] = [];
  /** Steps taken in batches whose answer has not been given yet. */
  #taken = 0;

  get pending(): boolean {
    return this.#requestIds.length > 0;
  }

  add(delta: number, requestId: string | undefined): StepAdded {
    if (this.#requestIds.length + this.#taken >= MAX_VOLUME_STEPS_PENDING) return "refused";
    this.#delta += delta;
    this.#requestIds.push(requestId);
    if (this.#requestIds.length >= MAX_VOLUME_BATCH) return "full";
    return this.#requestIds.length === 1 ? "first" : "added";
  }

  /** The batch, to go to the device; its steps count as pending until `answered`. */
  take(): { readonly delta: number; readonly requestIds: readonly (string | undefined)[] } {
    const out = { delta: this.#delta, requestIds: this.#requestIds };
    this.#taken += out.requestIds.length;
    this.#delta = 0;
    this.#requestIds = [];
    return out;
  }

  /** A taken batch of `count` steps has been answered. */
  answered(count: number): void {
    this.#taken = Math.max(0, this.#taken - count);
  }
}
