// The RDMA set-up record: what one end tells the other about its queue pair, sealed in a
// control frame over the side channel (so it is authenticated like every frame). Fixed size,
// big-endian:
//   0  u8  version (1)        1  u8  flags (0)        2  u16 lid
//   4  u32 queue pair number (24 bits)                8  u32 first packet sequence number (24 bits)
//  12  u8[16] GID            28  u32 path MTU in bytes (256..4096, a power of two)
//  32  u32 receive window (credits granted)           36  u32 receive slot bytes
import { WireError, WireErrorCode } from '../../wire/errors.ts';

export const ENDPOINT_VERSION = 1;
export const ENDPOINT_BYTES = 40;
/** Limits a peer's claims are checked against (a window and slots we would agree to send into). */
export const MAX_WINDOW = 4096;
export const MIN_SLOT_BYTES = 4096;
export const MAX_SLOT_BYTES = 64 * 1024 * 1024;

export interface RdmaEndpoint {
  qpn: number;
  psn: number;
  gid: Buffer;
  lid: number;
  mtu: number;
  window: number;
  slotBytes: number;
}

export function encodeEndpoint(e: RdmaEndpoint): Buffer {
  const out = Buffer.alloc(ENDPOINT_BYTES);
  out[0] = ENDPOINT_VERSION;
  out[1] = 0;
  out.writeUInt16BE(e.lid, 2);
  out.writeUInt32BE(e.qpn, 4);
  out.writeUInt32BE(e.psn, 8);
  e.gid.copy(out, 12, 0, 16);
  out.writeUInt32BE(e.mtu, 28);
  out.writeUInt32BE(e.window, 32);
  out.writeUInt32BE(e.slotBytes, 36);
  return out;
}

function bad(what: string): never {
  throw new WireError(WireErrorCode.MALFORMED, `RDMA endpoint record: ${what}`);
}

/** Parses and checks a peer's record. Throws WireError (MALFORMED) on anything out of range. */
export function decodeEndpoint(b: Uint8Array): RdmaEndpoint {
  if (b.byteLength !== ENDPOINT_BYTES) bad(`${b.byteLength} bytes, expected ${ENDPOINT_BYTES}`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint8(0) !== ENDPOINT_VERSION) bad(`version ${v.getUint8(0)}, expected ${ENDPOINT_VERSION}`);
  if (v.getUint8(1) !== 0) bad(`unknown flags 0x${v.getUint8(1).toString(16)}`);
  const qpn = v.getUint32(4);
  const psn = v.getUint32(8);
  if (qpn === 0 || qpn > 0xffffff) bad(`queue pair number ${qpn} out of range`);
  if (psn > 0xffffff) bad(`packet sequence number ${psn} out of range`);
  const mtu = v.getUint32(28);
  if (![256, 512, 1024, 2048, 4096].includes(mtu)) bad(`MTU ${mtu} is not 256, 512, 1024, 2048 or 4096`);
  const window = v.getUint32(32);
  if (window < 1 || window > MAX_WINDOW) bad(`window ${window} outside [1, ${MAX_WINDOW}]`);
  const slotBytes = v.getUint32(36);
  if (slotBytes < MIN_SLOT_BYTES || slotBytes > MAX_SLOT_BYTES) bad(`slot size ${slotBytes} outside [${MIN_SLOT_BYTES}, ${MAX_SLOT_BYTES}]`);
  return { qpn, psn, gid: Buffer.from(b.subarray(12, 28)), lid: v.getUint16(2), mtu, window, slotBytes };
}
