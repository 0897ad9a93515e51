// The serialized ModelInfer requests the inference benches send (pre-encoded, so the client
// does no encoding and every path is charged only for what happens after the bytes leave it).
import { randomBytes } from 'node:crypto';
import { encodeMessage } from '../src/kserve/proto.ts';

export type InferCase = 'simple' | 'identity-16k' | 'identity-1m';

export function inferRequest(kind: string): Buffer {
  if (kind === 'simple') {
    const int32 = Buffer.from(new Int32Array(16).buffer);
    return encodeMessage('ModelInferRequest', {
      modelName: 'simple',
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
      ],
      rawInputContents: [int32, int32],
    });
  }
  const bytes = kind === 'identity-1m' ? 1 << 20 : 16 << 10;
  return encodeMessage('ModelInferRequest', { modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, bytes / 4] }], rawInputContents: [randomBytes(bytes)] });
}
