// The link handshake, run over a byte stream before any frame (TCP, or the RDMA connection
// exchange). Both ends send a HELLO (role, wire versions, segment name, 32 random bytes);
// then each proves it holds the segment key with an HMAC over the transcript of both HELLOs,
// the initiator first, so a peer without the key learns nothing but "rejected". A wrong key,
// a wrong segment or no common version ends in a REJECT record, a typed HandshakeError on
// both ends, and a closed connection. Success yields the link's epoch-0 traffic secrets.
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import {
  deriveHandshakeAuthKey,
  deriveLinkSecrets,
  handshakeProof,
  proofMatches,
  transcriptHash,
  type HandshakeInputs,
  type LinkRole,
  type LinkSecrets,
} from '../crypto/key-schedule.ts';
import { isSluiceError } from '../errors.ts';
import { WireError } from '../wire/errors.ts';
import { WIRE_VERSION } from '../wire/frame-header.ts';
import {
  HELLO_NONCE_BYTES,
  HelloRole,
  RecordType,
  RejectCode,
  decodeHello,
  decodeProof,
  decodeReject,
  encodeHello,
  encodeProof,
  encodeReject,
  readRecord,
  type HandshakeRecord,
} from '../wire/handshake-record.ts';
import { HandshakeError, HandshakeErrorCode } from './errors.ts';
import { DataEventInput, type ByteInput } from './socket-input.ts';
import type { SegmentName } from './types.ts';

/** Bytes a peer may send before the handshake completes: the records, plus early frames. */
const MAX_BUFFERED = 4 * 1024 * 1024;

export const MIN_WIRE_VERSION = WIRE_VERSION;
export const MAX_WIRE_VERSION = WIRE_VERSION;

export interface HandshakeOptions {
  role: LinkRole;
  segment: SegmentName;
  segmentKey: Buffer;
  timeoutMs: number;
  /** Names the peer in error messages. */
  remote: string;
}

export interface HandshakeResult {
  version: number;
  secrets: LinkSecrets;
  /** Hex prefix of the transcript hash: the same on both ends. */
  linkId: string;
  /** Bytes received after the last handshake record (the first frames; a copy). The stream is left paused. */
  leftover: Buffer | undefined;
}

const REJECT_TO_ERROR: Record<number, HandshakeErrorCode> = {
  [RejectCode.AUTH]: HandshakeErrorCode.AUTH,
  [RejectCode.SEGMENT]: HandshakeErrorCode.SEGMENT,
  [RejectCode.VERSION]: HandshakeErrorCode.VERSION,
  [RejectCode.PROTOCOL]: HandshakeErrorCode.PROTOCOL,
  [RejectCode.BUSY]: HandshakeErrorCode.BUSY,
};

/** Reads handshake records off a stream; hands back what follows them. */
class RecordReader {
  readonly #stream: Duplex;
  readonly #input: ByteInput;
  #buf: Buffer = Buffer.alloc(0);
  #ended: Error | undefined;
  #wake: (() => void) | undefined;
  readonly #onEnd = (): void => {
    this.#ended ??= new HandshakeError(HandshakeErrorCode.CLOSED, 'the peer closed the connection during the handshake');
    this.#wake?.();
  };
  readonly #onError = (err: Error): void => {
    this.#ended ??= new HandshakeError(HandshakeErrorCode.CLOSED, `connection failed during the handshake: ${err.message}`, { cause: err });
    this.#wake?.();
  };

  constructor(stream: Duplex, input: ByteInput) {
    this.#stream = stream;
    this.#input = input;
    // Chunks may live in reused memory: keep copies (a handshake is a few hundred bytes).
    input.attach((chunk) => {
      if (this.#buf.byteLength + chunk.byteLength > MAX_BUFFERED) {
        this.#ended ??= new HandshakeError(HandshakeErrorCode.PROTOCOL, 'peer sent more than a handshake before finishing it');
      } else {
        this.#buf = Buffer.concat([this.#buf, chunk]);
      }
      this.#wake?.();
    });
    stream.on('end', this.#onEnd);
    stream.on('close', this.#onEnd);
    stream.on('error', this.#onError);
  }

  async next(): Promise<HandshakeRecord> {
    for (;;) {
      const rec = readRecord(this.#buf);
      if (rec !== undefined) {
        const raw = Buffer.from(rec.raw);
        this.#buf = this.#buf.subarray(rec.raw.byteLength);
        return { type: rec.type, raw, body: raw.subarray(raw.byteLength - rec.body.byteLength) };
      }
      if (this.#ended !== undefined) throw this.#ended;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }

  /** Stops reading; returns unread bytes (the first frames, when the peer was quick). */
  detach(): Buffer | undefined {
    this.#stream.pause();
    this.#input.detach();
    this.#stream.off('end', this.#onEnd);
    this.#stream.off('close', this.#onEnd);
    this.#stream.off('error', this.#onError);
    return this.#buf.byteLength > 0 ? this.#buf : undefined;
  }
}

function protocolError(what: string, remote: string): HandshakeError {
  return new HandshakeError(HandshakeErrorCode.PROTOCOL, `${remote}: ${what}`);
}

function rejectedBy(remote: string, body: Buffer): HandshakeError {
  const r = decodeReject(body);
  const code = REJECT_TO_ERROR[r.code] ?? HandshakeErrorCode.PROTOCOL;
  return new HandshakeError(code, `${remote} rejected the handshake: ${r.reason}`);
}

/**
 * Runs the handshake on `stream`, reading through `input` (default: its 'data' events). On
 * failure the stream is ended (after a REJECT where one is due) and destroyed shortly after,
 * and a HandshakeError is thrown.
 */
export async function performHandshake(stream: Duplex, opts: HandshakeOptions, input: ByteInput = new DataEventInput(stream)): Promise<HandshakeResult> {
  const reader = new RecordReader(stream, input);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HandshakeError(HandshakeErrorCode.TIMEOUT, `${opts.remote}: handshake did not complete within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
  });
  deadline.catch(() => undefined);
  try {
    const run = opts.role === 'initiator' ? initiate(stream, reader, opts) : accept(stream, reader, opts);
    run.catch(() => undefined); // after a timeout it may still settle: nobody waits for it
    const result = await Promise.race([run, deadline]);
    return { ...result, leftover: reader.detach() };
  } catch (err) {
    reader.detach();
    const failure =
      err instanceof HandshakeError
        ? err
        : err instanceof WireError
          ? new HandshakeError(HandshakeErrorCode.PROTOCOL, `${opts.remote}: ${err.message}`, { cause: err })
          : isSluiceError(err)
            ? err
            : new HandshakeError(HandshakeErrorCode.PROTOCOL, `${opts.remote}: ${String(err)}`, { cause: err });
    if (failure.code === HandshakeErrorCode.PROTOCOL && !stream.destroyed && stream.writable) {
      stream.write(encodeReject(RejectCode.PROTOCOL, 'malformed handshake'));
    }
    endThenDestroy(stream, 1000, input);
    throw failure;
  } finally {
    clearTimeout(timer);
  }
}

/** Half-closes so a REJECT reaches the peer, then makes sure the stream is gone. */
export function endThenDestroy(stream: Duplex, graceMs = 1000, input?: ByteInput): void {
  if (stream.destroyed) return;
  stream.end();
  input?.attach(() => undefined); // drop whatever the peer still sends, so its FIN is seen
  stream.resume();
  setTimeout(() => stream.destroy(), graceMs).unref();
}

function fail(stream: Duplex, code: RejectCode, errCode: HandshakeErrorCode, reason: string, remote: string): HandshakeError {
  if (!stream.destroyed && stream.writable) stream.write(encodeReject(code, reason));
  return new HandshakeError(errCode, `${remote}: ${reason}`);
}

type Agreed = Omit<HandshakeResult, 'leftover'>;

async function initiate(stream: Duplex, reader: RecordReader, opts: HandshakeOptions): Promise<Agreed> {
  const nonce = randomBytes(HELLO_NONCE_BYTES);
  const helloI = encodeHello({ role: HelloRole.INITIATOR, minVersion: MIN_WIRE_VERSION, maxVersion: MAX_WIRE_VERSION, selectedVersion: 0, nonce, segment: opts.segment });
  stream.write(helloI);
  const rec = await reader.next();
  if (rec.type === RecordType.REJECT) throw rejectedBy(opts.remote, rec.body);
  if (rec.type !== RecordType.HELLO) throw protocolError('expected HELLO from the acceptor', opts.remote);
  const hello = decodeHello(rec.body);
  if (hello.role !== HelloRole.ACCEPTOR) throw protocolError('peer answered as an initiator', opts.remote);
  if (hello.segment !== opts.segment) {
    throw fail(stream, RejectCode.SEGMENT, HandshakeErrorCode.SEGMENT, `peer serves segment "${hello.segment}", not "${opts.segment}"`, opts.remote);
  }
  const v = hello.selectedVersion;
  if (v < MIN_WIRE_VERSION || v > MAX_WIRE_VERSION || v < hello.minVersion || v > hello.maxVersion) {
    throw fail(stream, RejectCode.VERSION, HandshakeErrorCode.VERSION, `peer selected wire version ${v}, this node speaks ${MIN_WIRE_VERSION}..${MAX_WIRE_VERSION}`, opts.remote);
  }
  const inputs: HandshakeInputs = {
    segmentKey: opts.segmentKey,
    segment: opts.segment,
    initiatorNonce: nonce,
    acceptorNonce: hello.nonce,
    transcriptHash: transcriptHash([helloI, rec.raw]),
  };
  const authKey = deriveHandshakeAuthKey(inputs);
  stream.write(encodeProof(handshakeProof(authKey, 'initiator', inputs.transcriptHash)));
  const proofRec = await reader.next();
  if (proofRec.type === RecordType.REJECT) throw rejectedBy(opts.remote, proofRec.body);
  if (proofRec.type !== RecordType.PROOF) throw protocolError('expected PROOF from the acceptor', opts.remote);
  const expected = handshakeProof(authKey, 'acceptor', inputs.transcriptHash);
  authKey.fill(0);
  if (!proofMatches(expected, decodeProof(proofRec.body))) {
    throw fail(stream, RejectCode.AUTH, HandshakeErrorCode.AUTH, `peer does not hold the key of segment "${opts.segment}"`, opts.remote);
  }
  return { version: v, secrets: deriveLinkSecrets(inputs, 'initiator'), linkId: Buffer.from(inputs.transcriptHash.subarray(0, 8)).toString('hex') };
}

async function accept(stream: Duplex, reader: RecordReader, opts: HandshakeOptions): Promise<Agreed> {
  const rec = await reader.next();
  if (rec.type === RecordType.REJECT) throw rejectedBy(opts.remote, rec.body);
  if (rec.type !== RecordType.HELLO) throw protocolError('expected HELLO from the initiator', opts.remote);
  const hello = decodeHello(rec.body);
  if (hello.role !== HelloRole.INITIATOR) throw protocolError('peer opened as an acceptor', opts.remote);
  if (hello.segment !== opts.segment) {
    throw fail(stream, RejectCode.SEGMENT, HandshakeErrorCode.SEGMENT, `this listener serves segment "${opts.segment}", not "${hello.segment}"`, opts.remote);
  }
  const v = Math.min(hello.maxVersion, MAX_WIRE_VERSION);
  if (v < Math.max(hello.minVersion, MIN_WIRE_VERSION)) {
    throw fail(
      stream,
      RejectCode.VERSION,
      HandshakeErrorCode.VERSION,
      `no common wire version (peer ${hello.minVersion}..${hello.maxVersion}, this node ${MIN_WIRE_VERSION}..${MAX_WIRE_VERSION})`,
      opts.remote,
    );
  }
  const nonce = randomBytes(HELLO_NONCE_BYTES);
  const helloA = encodeHello({ role: HelloRole.ACCEPTOR, minVersion: MIN_WIRE_VERSION, maxVersion: MAX_WIRE_VERSION, selectedVersion: v, nonce, segment: opts.segment });
  stream.write(helloA);
  const inputs: HandshakeInputs = {
    segmentKey: opts.segmentKey,
    segment: opts.segment,
    initiatorNonce: hello.nonce,
    acceptorNonce: nonce,
    transcriptHash: transcriptHash([rec.raw, helloA]),
  };
  const authKey = deriveHandshakeAuthKey(inputs);
  const proofRec = await reader.next();
  if (proofRec.type === RecordType.REJECT) throw rejectedBy(opts.remote, proofRec.body);
  if (proofRec.type !== RecordType.PROOF) throw protocolError('expected PROOF from the initiator', opts.remote);
  if (!proofMatches(handshakeProof(authKey, 'initiator', inputs.transcriptHash), decodeProof(proofRec.body))) {
    authKey.fill(0);
    throw fail(stream, RejectCode.AUTH, HandshakeErrorCode.AUTH, `segment key mismatch on segment "${opts.segment}"`, opts.remote);
  }
  stream.write(encodeProof(handshakeProof(authKey, 'acceptor', inputs.transcriptHash)));
  authKey.fill(0);
  return { version: v, secrets: deriveLinkSecrets(inputs, 'acceptor'), linkId: Buffer.from(inputs.transcriptHash.subarray(0, 8)).toString('hex') };
}
