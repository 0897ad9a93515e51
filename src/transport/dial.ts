// The dialling side both transports share: checking the endpoint options, and waiting for a TCP
// connection (the link's carrier, or RDMA's side channel) with a typed timeout or failure.
import type net from 'node:net';
import { KEY_BYTES } from '../crypto/aead.ts';
import { TransportError, TransportErrorCode } from './errors.ts';
import { SEGMENTS, type SegmentName } from './types.ts';

/** Throws RangeError with an exact message for options a listen() or connect() cannot use. */
export function checkEndpointOptions(opts: { segment: SegmentName; segmentKey: Buffer; host: string; port: number; device?: string }): void {
  if (!SEGMENTS.includes(opts.segment)) throw new RangeError(`segment must be "inference" | "training", got ${String(opts.segment)}`);
  if (!(opts.segmentKey instanceof Uint8Array) || opts.segmentKey.byteLength !== KEY_BYTES) {
    throw new RangeError(`segmentKey must be ${KEY_BYTES} bytes, got ${opts.segmentKey?.byteLength ?? typeof opts.segmentKey}`);
  }
  if (typeof opts.host !== 'string' || opts.host === '') throw new RangeError('host must be a non-empty string');
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new RangeError(`port must be an integer in [0, 65535], got ${opts.port}`);
  if (opts.device !== undefined && (typeof opts.device !== 'string' || opts.device === '')) throw new RangeError('device must be a non-empty string when given');
}

/** Resolves once `socket` (dialling `remote`) connects; TIMEOUT or CONNECT errors otherwise. */
export function whenConnected(socket: net.Socket, segment: SegmentName, remote: string, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TransportError(TransportErrorCode.TIMEOUT, `connecting to ${segment} peer ${remote} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      reject(new TransportError(TransportErrorCode.CONNECT, `cannot connect to ${segment} peer ${remote} (${err.code ?? err.message})`, { cause: err }));
    };
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve();
    });
    socket.once('error', onError);
  });
}
