// gRPC message compression (grpc-encoding / grpc-accept-encoding, gRPC's compression spec):
// gzip and deflate, as Triton and grpc-js offer them. A request names its encoding in
// `grpc-encoding` and flags each compressed message; the server answers in the request's
// encoding when the client lists it in `grpc-accept-encoding`, else uncompressed. Inflating is
// bounded (zlib's maxOutputLength), so a small bomb cannot grow past the message limit.
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import { GrpcStatus, type GrpcStatusCode } from '../kserve/status.ts';

export type GrpcEncoding = 'identity' | 'gzip' | 'deflate';

/** What this end takes, for `grpc-accept-encoding`. */
export const ACCEPT_ENCODING = 'identity,deflate,gzip';

export class CompressionError extends Error {
  readonly status: GrpcStatusCode;
  constructor(status: GrpcStatusCode, message: string) {
    super(message);
    this.name = 'CompressionError';
    this.status = status;
  }
}

/** The request's grpc-encoding; undefined for one this end does not speak. */
export function parseGrpcEncoding(header: string | string[] | undefined): GrpcEncoding | undefined {
  if (header === undefined || header === '') return 'identity';
  const v = (Array.isArray(header) ? header[0]! : header).trim().toLowerCase();
  return v === 'identity' || v === 'gzip' || v === 'deflate' ? v : undefined;
}

/** The response's encoding: the request's, when the client accepts it; else identity. */
export function responseEncoding(request: GrpcEncoding, acceptHeader: string | string[] | undefined): GrpcEncoding {
  if (request === 'identity' || acceptHeader === undefined) return 'identity';
  const accepted = (Array.isArray(acceptHeader) ? acceptHeader.join(',') : acceptHeader).split(',').map((s) => s.trim().toLowerCase());
  return accepted.includes(request) ? request : 'identity';
}

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const gzip = promisify(zlib.gzip);
const deflate = promisify(zlib.deflate);

/** Inflates one message; RESOURCE_EXHAUSTED past `maxBytes`, INTERNAL for bytes that do not inflate. */
export async function decompressMessage(encoding: GrpcEncoding, msg: Buffer, maxBytes: number): Promise<Buffer> {
  if (encoding === 'identity') throw new CompressionError(GrpcStatus.INTERNAL, 'a message is flagged compressed but the call has no grpc-encoding');
  try {
    return await (encoding === 'gzip' ? gunzip : inflate)(msg, { maxOutputLength: maxBytes });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new CompressionError(GrpcStatus.RESOURCE_EXHAUSTED, `decompressed message larger than max (${maxBytes} bytes)`);
    }
    throw new CompressionError(GrpcStatus.INTERNAL, `cannot decompress the ${encoding} message: ${e.message}`);
  }
}

export function compressMessage(encoding: Exclude<GrpcEncoding, 'identity'>, msg: Buffer): Promise<Buffer> {
  return (encoding === 'gzip' ? gzip : deflate)(msg);
}
