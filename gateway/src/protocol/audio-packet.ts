/**
 * Sealing and opening audio datagrams: header + AES-128-CTR payload with the header as IV.
 * Used by the gateway (downstream) and by the device simulator (upstream), so both sides
 * of every test speak through the same, separately unit-tested code.
 */
import { aesCtr, aesCtrInto } from "./crypto.ts";
import { UDP_HEADER_BYTES, type UdpPacket, writeUdpHeader } from "./udp-packet.ts";

export interface AudioPacketFields {
  readonly connectionId: number;
  readonly timestamp: number;
  readonly sequence: number;
}

export function sealAudioPacket(key: Buffer, fields: AudioPacketFields, opus: Buffer): Buffer {
  const datagram = Buffer.allocUnsafe(UDP_HEADER_BYTES + opus.length);
  writeUdpHeader(datagram, { ...fields, payloadLength: opus.length });
  aesCtrInto(key, datagram.subarray(0, UDP_HEADER_BYTES), opus, datagram, UDP_HEADER_BYTES);
  return datagram;
}

export function openAudioPacket(key: Buffer, packet: UdpPacket): Buffer {
  return aesCtr(key, packet.headerBytes, packet.payload);
}
