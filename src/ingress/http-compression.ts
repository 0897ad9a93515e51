// HTTP body compression on the REST front: request bodies in Content-Encoding gzip or deflate
// (inflated with the request limit as a hard bound, so a small bomb cannot grow past it), and
// gzip answers to clients whose Accept-Encoding takes them (Triton's HTTP API does both).
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import { tooLarge } from './http-body.ts';

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const gzip = promisify(zlib.gzip);

/** Whether an Accept-Encoding header takes gzip (listed, or `*`, with a q-value above 0). */
export function acceptsGzip(header: string): boolean {
  if (header === '') return false;
  let star: boolean | undefined;
  for (const part of header.toLowerCase().split(',')) {
    const [coding, ...params] = part.trim().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const ok = q === undefined || Number(q.slice(2)) > 0;
    if (coding === 'gzip' || coding === 'x-gzip') return ok;
    if (coding === '*') star = ok;
  }
  return star ?? false;
}

/** The body without its Content-Encoding; 415 for an encoding not taken, 413 past `maxBytes`. */
export async function decodeContentEncoding(encoding: string, body: Buffer, maxBytes: number): Promise<Buffer> {
  const enc = encoding.trim().toLowerCase();
  const inflater = enc === 'gzip' || enc === 'x-gzip' ? gunzip : enc === 'deflate' ? inflate : undefined;
  if (inflater === undefined) {
    throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `Content-Encoding '${encoding.slice(0, 40)}' is not supported (gzip and deflate are)`, { httpStatus: 415 });
  }
  try {
    return await inflater(body, { maxOutputLength: maxBytes });
  } catch (err) {
    if (err instanceof RangeError) throw tooLarge(`more than ${maxBytes} (decompressed)`, maxBytes);
    throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `the ${enc} request body does not decompress: ${(err as Error).message}`);
  }
}

export function gzipBody(body: string | Buffer): Promise<Buffer> {
  return gzip(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
}
