// Collects a request body from uWS with a hard size limit. uWS hands out chunks that are valid
// only inside the callback, so each is copied once into the body buffer (preallocated when
// Content-Length is known).
import type { HttpResponse } from 'uWebSockets.js';
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';

export function tooLarge(size: number | string, limit: number): InferenceError {
  return new InferenceError(
    InferenceErrorCode.TOO_LARGE,
    `request body of ${size} bytes exceeds the limit of ${limit} bytes (limits.maxRequestBytes)`,
  );
}

/**
 * Reads the body of `res`. `contentLength` is the header value ('' when absent). Calls
 * `done(body)` or `fail(err)` exactly once unless the request is aborted first.
 */
export function readBody(
  res: HttpResponse,
  contentLength: string,
  limit: number,
  done: (body: Buffer) => void,
  fail: (err: InferenceError) => void,
): void {
  let expected = -1;
  if (contentLength !== '') {
    if (!/^\d{1,15}$/.test(contentLength)) {
      fail(new InferenceError(InferenceErrorCode.BAD_REQUEST, 'Content-Length is not a number'));
      return;
    }
    expected = Number(contentLength);
    if (expected > limit) {
      fail(tooLarge(expected, limit));
      return;
    }
  }
  let body: Buffer | undefined = expected >= 0 ? Buffer.allocUnsafe(expected) : undefined;
  const chunks: Buffer[] = [];
  let received = 0;
  let failed = false;
  res.onData((chunk, isLast) => {
    if (failed) return;
    const n = chunk.byteLength;
    if (received + n > (expected >= 0 ? expected : limit)) {
      failed = true;
      fail(expected >= 0 ? new InferenceError(InferenceErrorCode.BAD_REQUEST, 'body longer than Content-Length') : tooLarge(`more than ${limit}`, limit));
      return;
    }
    if (body !== undefined) body.set(new Uint8Array(chunk), received);
    else chunks.push(Buffer.from(new Uint8Array(chunk)));
    received += n;
    if (isLast) {
      if (body === undefined) body = Buffer.concat(chunks, received);
      else if (received !== expected) {
        failed = true;
        fail(new InferenceError(InferenceErrorCode.BAD_REQUEST, `body has ${received} bytes, Content-Length says ${expected}`));
        return;
      }
      done(body);
    }
  });
}
