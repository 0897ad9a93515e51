// Poisoning checks on received training tensors: reads a verified spooled tensor (numeric
// datatypes; at most `maxBytes` of it, sampled evenly in blocks beyond that) and runs the
// monitor's poisoning detector on it. The verdict says whether to withhold it (quarantine).
// A tensor encrypted at rest is read through the spool's `open` (decrypted ranges), not the file.
import { open } from 'node:fs/promises';
import { datatypeInfo } from '../../kserve/datatypes.ts';
import type { TensorMeta } from '../../training/tensor-meta.ts';
import { rawToFloats } from './inference-tap.ts';
import type { ThreatMonitor } from './threat-monitor.ts';

const BLOCK = 64 * 1024;

/** Random access to a tensor's bytes (Spool.openTensor, or a plain file). */
export interface TensorBytes {
  read(buf: Buffer, bufOffset: number, length: number, position: number): Promise<unknown>;
  close(): Promise<void>;
}

/** The bytes to look at: the whole file when small, else `maxBytes` in evenly spaced blocks (element-aligned). */
async function sampleFile(fh: TensorBytes, total: number, elementSize: number, maxBytes: number): Promise<Buffer> {
  try {
    if (total <= maxBytes) {
      const buf = Buffer.alloc(total);
      await fh.read(buf, 0, total, 0);
      return buf;
    }
    const blocks = Math.floor(maxBytes / BLOCK);
    const block = BLOCK - (BLOCK % elementSize);
    const out = Buffer.alloc(blocks * block);
    const step = Math.floor((total - block) / Math.max(1, blocks - 1));
    for (let i = 0; i < blocks; i++) {
      const at = Math.min(total - block, i * step);
      await fh.read(out, i * block, block, at - (at % elementSize));
    }
    return out;
  } finally {
    await fh.close();
  }
}

export function spooledTensorCheck(monitor: ThreatMonitor, quarantine: boolean, maxBytes = 16 * 1024 * 1024) {
  return async (t: { id: string; from: string; tensor: TensorMeta; file: string; open?: () => Promise<TensorBytes> }): Promise<{ withhold: boolean; reason?: string }> => {
    const info = datatypeInfo(t.tensor.datatype);
    if (info === undefined || info.size === 0 || t.tensor.datatype === 'BOOL') return { withhold: false };
    const total = t.tensor.shape.reduce((a, b) => a * b, 1) * info.size;
    const bytes = await sampleFile(t.open !== undefined ? await t.open() : await open(t.file, 'r'), total, info.size, maxBytes);
    const values = rawToFloats(info.name, bytes);
    if (values === undefined) return { withhold: false };
    const v = monitor.inspectTrainingTensor(t.tensor.name, t.from, `training:${t.from}`, values, t.tensor.shape, t.id);
    if (!v.flagged || !quarantine) return { withhold: false };
    return { withhold: true, reason: `suspected poisoning (${v.signals.join(', ')})` };
  };
}
