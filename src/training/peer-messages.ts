// The training peer protocol: messages two sluice nodes exchange on a training-segment link to
// move one tensor. Each is one link message (the link frames, encrypts and authenticates it);
// the body starts with the transfer id, then fixed big-endian fields. CHUNK bodies are a small
// header plus the data as a separate buffer of the gather list, so sending never copies data.
//
//   OPEN    id u64 total, u8 sink, u8 flags(1=resume), u16 n, n bytes JSON {from, tensor}
//   OPENED  id u64 offset, u8 flags(1=completed)
//   CHUNK   id u64 offset, u32 crc32(data), data...
//   ACK     id u64 acked (bytes written to the sink, cumulative)
//   NACK    id u64 expected offset, u8 reason (1=bad crc, 2=gap)
//   FINISH  id u64 total, 32 bytes SHA-256 expected
//   RESULT  id 32 bytes SHA-256 computed (the tensor is verified and complete)
//   ERROR   id u8 status, u16 n, n bytes message (the transfer is over on the sender's side)
//   CANCEL  id u16 n, n bytes reason
// id = u8 n, n bytes of [A-Za-z0-9_-].
import { z } from 'zod';
import { MessageKind } from '../wire/message-kinds.ts';
import { PeerProtocolError, TRANSFER_STATUSES, type TransferStatusCode } from './errors.ts';
import { ATTRIBUTE_KEY_RE, MAX_ATTRIBUTE_BYTES } from './names.ts';
import type { Sink, TensorMeta } from './tensor-meta.ts';

/** Message kinds of the training peer protocol (registered in src/wire/message-kinds.ts). */
export const TrainingKind = {
  OPEN: MessageKind.TRAINING_OPEN,
  OPENED: MessageKind.TRAINING_OPENED,
  CHUNK: MessageKind.TRAINING_CHUNK,
  ACK: MessageKind.TRAINING_ACK,
  NACK: MessageKind.TRAINING_NACK,
  FINISH: MessageKind.TRAINING_FINISH,
  RESULT: MessageKind.TRAINING_RESULT,
  ERROR: MessageKind.TRAINING_ERROR,
  CANCEL: MessageKind.TRAINING_CANCEL,
} as const;
export type TrainingKindValue = (typeof TrainingKind)[keyof typeof TrainingKind];

export function isTrainingKind(kind: number): kind is TrainingKindValue {
  return kind >= TrainingKind.OPEN && kind <= TrainingKind.CANCEL;
}

export const NackReason = { BAD_CRC: 1, GAP: 2 } as const;
export type NackReasonValue = (typeof NackReason)[keyof typeof NackReason];

export type PeerMessage =
  | { kind: typeof TrainingKind.OPEN; id: string; total: number; sink: Sink; resume: boolean; from: string; tensor: TensorMeta }
  | { kind: typeof TrainingKind.OPENED; id: string; offset: number; completed: boolean }
  | { kind: typeof TrainingKind.CHUNK; id: string; offset: number; crc: number; data: Buffer }
  | { kind: typeof TrainingKind.ACK; id: string; acked: number }
  | { kind: typeof TrainingKind.NACK; id: string; expected: number; reason: NackReasonValue }
  | { kind: typeof TrainingKind.FINISH; id: string; total: number; sha256: Buffer }
  | { kind: typeof TrainingKind.RESULT; id: string; sha256: Buffer }
  | { kind: typeof TrainingKind.ERROR; id: string; status: TransferStatusCode; message: string }
  | { kind: typeof TrainingKind.CANCEL; id: string; reason: string };

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_TEXT = 1024;
const SINKS: readonly Sink[] = ['spool', 'stream'];

const openJson = z.object({
  from: z.string().min(1).max(256),
  tensor: z.object({
    name: z.string().regex(/^[A-Za-z0-9._:/-]{1,256}$/),
    datatype: z.string().regex(/^[A-Za-z0-9_]{0,32}$/),
    shape: z.array(z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER)).max(32),
    attributes: z.record(z.string().regex(ATTRIBUTE_KEY_RE), z.string()),
  }),
});

// ---- encoding ----

function idHeader(id: string, extra: number): { buf: Buffer; at: number } {
  const n = Buffer.byteLength(id, 'latin1');
  const buf = Buffer.allocUnsafe(1 + n + extra);
  buf.writeUInt8(n, 0);
  buf.write(id, 1, 'latin1');
  return { buf, at: 1 + n };
}

function writeU64(buf: Buffer, v: number, at: number): number {
  buf.writeUInt32BE(Math.floor(v / 0x1_0000_0000), at);
  buf.writeUInt32BE(v >>> 0, at + 4);
  return at + 8;
}

export function encodeOpen(m: { id: string; total: number; sink: Sink; resume: boolean; from: string; tensor: TensorMeta }): Buffer {
  const json = Buffer.from(JSON.stringify({ from: m.from, tensor: m.tensor }), 'utf8');
  const { buf, at } = idHeader(m.id, 8 + 1 + 1 + 2 + json.length);
  let p = writeU64(buf, m.total, at);
  p = buf.writeUInt8(SINKS.indexOf(m.sink), p);
  p = buf.writeUInt8(m.resume ? 1 : 0, p);
  p = buf.writeUInt16BE(json.length, p);
  json.copy(buf, p);
  return buf;
}

export function encodeOpened(id: string, offset: number, completed: boolean): Buffer {
  const { buf, at } = idHeader(id, 9);
  buf.writeUInt8(completed ? 1 : 0, writeU64(buf, offset, at));
  return buf;
}

/** The largest CHUNK header (a 64-byte id): a chunk's message is at most this plus its data. */
export const MAX_CHUNK_HEADER_BYTES = 1 + 64 + 8 + 4;

/** The header of a CHUNK; the data goes as the next buffer of the gather list. */
export function encodeChunkHeader(id: string, offset: number, crc: number): Buffer {
  const { buf, at } = idHeader(id, 12);
  buf.writeUInt32BE(crc >>> 0, writeU64(buf, offset, at));
  return buf;
}

export function encodeAck(id: string, acked: number): Buffer {
  const { buf, at } = idHeader(id, 8);
  writeU64(buf, acked, at);
  return buf;
}

export function encodeNack(id: string, expected: number, reason: NackReasonValue): Buffer {
  const { buf, at } = idHeader(id, 9);
  buf.writeUInt8(reason, writeU64(buf, expected, at));
  return buf;
}

export function encodeFinish(id: string, total: number, sha256: Buffer): Buffer {
  const { buf, at } = idHeader(id, 40);
  sha256.copy(buf, writeU64(buf, total, at));
  return buf;
}

export function encodeResult(id: string, sha256: Buffer): Buffer {
  const { buf, at } = idHeader(id, 32);
  sha256.copy(buf, at);
  return buf;
}

function encodeText(id: string, prefix: number[], text: string): Buffer {
  const t = Buffer.from(text.slice(0, MAX_TEXT), 'utf8');
  const { buf, at } = idHeader(id, prefix.length + 2 + t.length);
  let p = at;
  for (const b of prefix) p = buf.writeUInt8(b, p);
  p = buf.writeUInt16BE(t.length, p);
  t.copy(buf, p);
  return buf;
}

export function encodeError(id: string, status: TransferStatusCode, message: string): Buffer {
  return encodeText(id, [TRANSFER_STATUSES.indexOf(status)], message);
}

export function encodeCancel(id: string, reason: string): Buffer {
  return encodeText(id, [], reason);
}

// ---- decoding (untrusted bytes: every length is checked) ----

class Reader {
  at = 0;
  constructor(readonly buf: Buffer) {}
  need(n: number, what: string): void {
    if (this.at + n > this.buf.length) throw new PeerProtocolError(`training message truncated reading ${what} (${this.buf.length} bytes)`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf.readUInt8(this.at++);
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.at);
    this.at += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  u64(what: string): number {
    const hi = this.u32(what);
    const lo = this.u32(what);
    if (hi > 0x1f_ffff) throw new PeerProtocolError(`training message ${what} exceeds 2^53`);
    return hi * 0x1_0000_0000 + lo;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }
  text(what: string): string {
    return this.bytes(this.u16(`${what} length`), what).toString('utf8');
  }
  rest(): Buffer {
    const b = this.buf.subarray(this.at);
    this.at = this.buf.length;
    return b;
  }
  end(what: string): void {
    if (this.at !== this.buf.length) throw new PeerProtocolError(`training ${what} message has ${this.buf.length - this.at} trailing bytes`);
  }
}

function readId(r: Reader): string {
  const n = r.u8('id length');
  const id = r.bytes(n, 'id').toString('latin1');
  if (!ID_RE.test(id)) throw new PeerProtocolError('training message carries an invalid transfer id');
  return id;
}

/** Decodes a training message body; throws PeerProtocolError on anything malformed. */
export function decodePeerMessage(kind: number, body: Buffer): PeerMessage {
  const r = new Reader(body);
  const id = readId(r);
  switch (kind) {
    case TrainingKind.OPEN: {
      const total = r.u64('total');
      const sinkIndex = r.u8('sink');
      const flags = r.u8('flags');
      const json = r.bytes(r.u16('meta length'), 'meta');
      r.end('OPEN');
      const sink = SINKS[sinkIndex];
      if (sink === undefined) throw new PeerProtocolError(`training OPEN has unknown sink ${sinkIndex}`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(json.toString('utf8'));
      } catch {
        throw new PeerProtocolError('training OPEN metadata is not JSON');
      }
      const meta = openJson.safeParse(parsed);
      if (!meta.success) throw new PeerProtocolError(`training OPEN metadata is invalid: ${meta.error.issues[0]?.message ?? 'bad shape'}`);
      let attrBytes = 0;
      for (const [k, v] of Object.entries(meta.data.tensor.attributes)) attrBytes += Buffer.byteLength(k) + Buffer.byteLength(v);
      if (attrBytes > MAX_ATTRIBUTE_BYTES) throw new PeerProtocolError('training OPEN attributes are too large');
      return { kind, id, total, sink, resume: (flags & 1) !== 0, from: meta.data.from, tensor: meta.data.tensor };
    }
    case TrainingKind.OPENED: {
      const offset = r.u64('offset');
      const flags = r.u8('flags');
      r.end('OPENED');
      return { kind, id, offset, completed: (flags & 1) !== 0 };
    }
    case TrainingKind.CHUNK: {
      const offset = r.u64('offset');
      const crc = r.u32('crc');
      return { kind, id, offset, crc, data: r.rest() };
    }
    case TrainingKind.ACK: {
      const acked = r.u64('acked');
      r.end('ACK');
      return { kind, id, acked };
    }
    case TrainingKind.NACK: {
      const expected = r.u64('expected');
      const reason = r.u8('reason');
      r.end('NACK');
      if (reason !== NackReason.BAD_CRC && reason !== NackReason.GAP) throw new PeerProtocolError(`training NACK has unknown reason ${reason}`);
      return { kind, id, expected, reason };
    }
    case TrainingKind.FINISH: {
      const total = r.u64('total');
      const sha256 = Buffer.from(r.bytes(32, 'sha256'));
      r.end('FINISH');
      return { kind, id, total, sha256 };
    }
    case TrainingKind.RESULT: {
      const sha256 = Buffer.from(r.bytes(32, 'sha256'));
      r.end('RESULT');
      return { kind, id, sha256 };
    }
    case TrainingKind.ERROR: {
      const s = r.u8('status');
      const message = r.text('message');
      r.end('ERROR');
      const status = TRANSFER_STATUSES[s];
      if (status === undefined) throw new PeerProtocolError(`training ERROR has unknown status ${s}`);
      return { kind, id, status, message };
    }
    case TrainingKind.CANCEL: {
      const reason = r.text('reason');
      r.end('CANCEL');
      return { kind, id, reason };
    }
    default:
      throw new PeerProtocolError(`unknown training message kind 0x${kind.toString(16)}`);
  }
}
