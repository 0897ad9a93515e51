// ModelStreamInferResponse built around an already serialized ModelInferResponse: field 2
// (infer_response) is the response bytes behind a tag and a length, so the ingress wraps the
// model server's answer without decoding it.
import { encodeMessage } from './proto.ts';

function varintBytes(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

/** Serialized ModelStreamInferResponse { infer_response = <response> }. */
export function wrapStreamResponse(response: Buffer): Buffer {
  const head = Buffer.from([0x12, ...varintBytes(response.length)]);
  return Buffer.concat([head, response], head.length + response.length);
}

/** Serialized ModelStreamInferResponse for a failed request, keeping the request's id. */
export function streamErrorResponse(message: string, modelName: string, id: string): Buffer {
  return encodeMessage('ModelStreamInferResponse', { errorMessage: message, inferResponse: { modelName, id } });
}
