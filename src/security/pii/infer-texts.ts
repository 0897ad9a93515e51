// The text a KServe v2 inference message carries: every element of its BYTES tensors (raw or
// typed contents) that is valid UTF-8, and every string parameter (request, input and output
// level). `rewriteInferTexts` decodes the message, hands each text to `edit`, and re-encodes
// only when some text changed (otherwise the original bytes go on untouched).
import { decodeMessage, encodeMessage, type InferParameterMsg, type ModelInferRequestMsg, type ModelInferResponseMsg, type ParameterMap } from '../../kserve/proto.ts';
import { InferenceError, InferenceErrorCode } from '../../kserve/inference-error.ts';

/** Returns the new text, or undefined to leave it as it is. */
export type TextEdit = (text: string) => string | undefined;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeText(b: Uint8Array): string | undefined {
  try {
    return utf8.decode(b);
  } catch {
    return undefined; // binary element: not text, not scanned
  }
}

/** Applies `edit` to each element of a raw BYTES tensor (4-byte LE length + bytes, repeated). */
function editRawBytes(raw: Uint8Array, edit: TextEdit): Uint8Array | undefined {
  const parts: Uint8Array[] = [];
  let changed = false;
  let pos = 0;
  while (pos < raw.length) {
    if (raw.length - pos < 4) throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, 'truncated BYTES element length');
    const len = raw[pos]! + raw[pos + 1]! * 0x100 + raw[pos + 2]! * 0x10000 + raw[pos + 3]! * 0x1000000;
    if (len > raw.length - pos - 4) throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, 'BYTES element runs past the tensor');
    const el = raw.subarray(pos + 4, pos + 4 + len);
    pos += 4 + len;
    const text = decodeText(el);
    const out = text === undefined ? undefined : edit(text);
    if (out === undefined) {
      parts.push(raw.subarray(pos - 4 - len, pos));
      continue;
    }
    changed = true;
    const body = Buffer.from(out, 'utf8');
    const head = Buffer.alloc(4);
    head.writeUInt32LE(body.length);
    parts.push(head, body);
  }
  return changed ? Buffer.concat(parts) : undefined;
}

function editElements(els: Uint8Array[] | undefined, edit: TextEdit): boolean {
  if (els === undefined) return false;
  let changed = false;
  for (let i = 0; i < els.length; i++) {
    const text = decodeText(els[i]!);
    const out = text === undefined ? undefined : edit(text);
    if (out !== undefined) {
      els[i] = Buffer.from(out, 'utf8');
      changed = true;
    }
  }
  return changed;
}

function editParams(params: ParameterMap | undefined, edit: TextEdit): boolean {
  if (params === undefined) return false;
  let changed = false;
  for (const p of Object.values(params) as InferParameterMsg[]) {
    if (typeof p.stringParam !== 'string' || (p.parameterChoice !== undefined && p.parameterChoice !== 'stringParam')) continue;
    const out = edit(p.stringParam);
    if (out !== undefined) {
      p.stringParam = out;
      changed = true;
    }
  }
  return changed;
}

interface TensorLike {
  datatype: string;
  parameters?: ParameterMap;
  contents?: { bytesContents?: Uint8Array[] } | null;
}

function editMessage(tensors: TensorLike[], raw: Uint8Array[], params: ParameterMap | undefined, edit: TextEdit): boolean {
  let changed = editParams(params, edit);
  tensors.forEach((t, i) => {
    if (editParams(t.parameters, edit)) changed = true;
    if (t.datatype !== 'BYTES') return;
    const r = raw[i];
    if (r !== undefined) {
      const out = editRawBytes(r, edit);
      if (out !== undefined) {
        raw[i] = out;
        changed = true;
      }
    } else if (editElements(t.contents?.bytesContents, edit)) {
      changed = true;
    }
  });
  return changed;
}

function decodeOrRefuse<T>(type: 'ModelInferRequest' | 'ModelInferResponse', bytes: Uint8Array): T {
  try {
    return decodeMessage<T>(type, bytes);
  } catch (err) {
    throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `${type} cannot be decoded for the PII policy: ${(err as Error).message}`);
  }
}

/** Edits a serialized ModelInferRequest; returns the original buffer when nothing changed. */
export function rewriteRequestTexts(payload: Buffer, edit: TextEdit): Buffer {
  const msg = decodeOrRefuse<ModelInferRequestMsg>('ModelInferRequest', payload);
  if (!editMessage(msg.inputs, msg.rawInputContents, msg.parameters, edit)) return payload;
  return encodeMessage('ModelInferRequest', msg);
}

/**
 * Edits a serialized ModelInferResponse and sets string parameters on it (e.g. `pii-flags`);
 * returns the original buffer when nothing changed.
 */
export function rewriteResponseTexts(payload: Buffer, edit: TextEdit | undefined, addParams: () => Record<string, string>): Buffer {
  const msg = decodeOrRefuse<ModelInferResponseMsg>('ModelInferResponse', payload);
  let changed = edit === undefined ? false : editMessage(msg.outputs, msg.rawOutputContents, msg.parameters, edit);
  const extra = addParams();
  for (const [k, v] of Object.entries(extra)) {
    msg.parameters = { ...(msg.parameters ?? {}), [k]: { stringParam: v } };
    changed = true;
  }
  return changed ? encodeMessage('ModelInferResponse', msg) : payload;
}
