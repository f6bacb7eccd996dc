/**
 * The xiaozhi UDP audio packet: a 16-byte header, then one AES-128-CTR encrypted Opus
 * packet (docs/device-protocol.md section 3.2). Pure: bytes in, typed values out.
 *
 *   0  type (0x01 audio)   1 flags (0)   2..3 payload_len (BE)
 *   4..7 connection id (BE)   8..11 timestamp (BE, ms)   12..15 sequence (BE)
 */

export const UDP_HEADER_BYTES = 16;
export const UDP_TYPE_AUDIO = 0x01;
/** Largest payload the 16-bit length field can describe. */
export const UDP_MAX_PAYLOAD = 0xffff;

export interface UdpHeader {
  readonly type: number;
  readonly flags: number;
  readonly payloadLength: number;
  readonly connectionId: number;
  readonly timestamp: number;
  readonly sequence: number;
}

export interface UdpPacket {
  readonly header: UdpHeader;
  /** The header bytes exactly as received: the AES-CTR IV. */
  readonly headerBytes: Buffer;
  /** The encrypted payload (a view into the datagram, not a copy). */
  readonly payload: Buffer;
}

export type UdpParseError = "too_short" | "not_audio" | "length_mismatch";

export type UdpParseResult =
  | { readonly ok: true; readonly packet: UdpPacket }
  | { readonly ok: false; readonly reason: UdpParseError };

/**
 * Parses one datagram. The firmware drops any datagram whose length is not exactly
 * 16 + payload_len; we are as strict, so a truncated or padded packet never reaches the
 * decoder.
 */
export function parseUdpPacket(datagram: Buffer): UdpParseResult {
  if (datagram.length < UDP_HEADER_BYTES) return { ok: false, reason: "too_short" };
  const type = datagram[0] as number;
  if (type !== UDP_TYPE_AUDIO) return { ok: false, reason: "not_audio" };
  const payloadLength = datagram.readUInt16BE(2);
  if (datagram.length !== UDP_HEADER_BYTES + payloadLength) return { ok: false, reason: "length_mismatch" };
  return {
    ok: true,
    packet: {
      header: {
        type,
        flags: datagram[1] as number,
        payloadLength,
        connectionId: datagram.readUInt32BE(4),
        timestamp: datagram.readUInt32BE(8),
        sequence: datagram.readUInt32BE(12),
      },
      headerBytes: datagram.subarray(0, UDP_HEADER_BYTES),
      payload: datagram.subarray(UDP_HEADER_BYTES),
    },
  };
}

/** Writes a header into `target` (16 bytes at `offset`). */
export function writeUdpHeader(
  target: Buffer,
  fields: Pick<UdpHeader, "payloadLength" | "connectionId" | "timestamp" | "sequence">,
  offset = 0,
): void {
  if (fields.payloadLength < 0 || fields.payloadLength > UDP_MAX_PAYLOAD) {
    throw new RangeError(`payload length ${fields.payloadLength} out of range`);
  }
  target[offset] = UDP_TYPE_AUDIO;
  target[offset + 1] = 0;
  target.writeUInt16BE(fields.payloadLength, offset + 2);
  target.writeUInt32BE(fields.connectionId >>> 0, offset + 4);
  target.writeUInt32BE(fields.timestamp >>> 0, offset + 8);
  target.writeUInt32BE(fields.sequence >>> 0, offset + 12);
}

/**
 * The hello reply's `udp.nonce`: the header template with payload_len, timestamp and
 * sequence zero. Firmware copies bytes 0, 1 and 4..7 from it into every packet it sends,
 * which is how its packets carry our connection id.
 */
export function headerTemplate(connectionId: number): Buffer {
  const template = Buffer.alloc(UDP_HEADER_BYTES);
  writeUdpHeader(template, { payloadLength: 0, connectionId, timestamp: 0, sequence: 0 });
  return template;
}
