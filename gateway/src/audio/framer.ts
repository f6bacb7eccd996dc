/**
 * Cuts a PCM16 stream of any chunk sizes into whole frames (60 ms at 24 kHz = 1440
 * samples = 2880 bytes). Holds at most one partial frame.
 */
export class PcmFramer {
  readonly #frameBytes: number;
  #partial: Buffer = Buffer.alloc(0);

  constructor(frameBytes: number) {
    if (frameBytes <= 0 || frameBytes % 2 !== 0)
      throw new RangeError("frame size must be a positive even byte count");
    this.#frameBytes = frameBytes;
  }

  get frameBytes(): number {
    return this.#frameBytes;
  }

  get pendingBytes(): number {
    return this.#partial.length;
  }

  /** Appends PCM; returns the whole frames now complete, oldest first. */
  push(pcm: Buffer): Buffer[] {
    let data = this.#partial.length > 0 ? Buffer.concat([this.#partial, pcm]) : pcm;
    const frames: Buffer[] = [];
    while (data.length >= this.#frameBytes) {
      frames.push(Buffer.from(data.subarray(0, this.#frameBytes)));
      data = data.subarray(this.#frameBytes);
    }
    this.#partial = Buffer.from(data);
    return frames;
  }

  /**
   * Ends the stream: the partial frame, if any, padded with silence to a whole frame
   * (the tail of a sentence is worth 60 ms of padding; the firmware cannot play a part).
   */
  flush(): Buffer | undefined {
    if (this.#partial.length === 0) return undefined;
    const frame = Buffer.alloc(this.#frameBytes);
    this.#partial.copy(frame);
    this.#partial = Buffer.alloc(0);
    return frame;
  }

  clear(): void {
    this.#partial = Buffer.alloc(0);
  }
}
