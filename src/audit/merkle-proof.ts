// RFC 6962 inclusion proofs (audit paths) over a checkpoint's entries, and their verification
// (the algorithm of RFC 9162 section 2.1.3.2), so an auditor can check that one entry is
// under a checkpoint's Merkle root without the other entries.
import { leafHash, nodeHash, splitPoint, subtree } from './merkle.ts';

/** The audit path of leaf `index` among `entryHashesHex` (hex node hashes, leaf side first). */
export function inclusionProof(entryHashesHex: readonly string[], index: number): string[] {
  if (!Number.isSafeInteger(index) || index < 0 || index >= entryHashesHex.length) throw new RangeError(`leaf ${index} is not in a tree of ${entryHashesHex.length}`);
  const leaves = entryHashesHex.map((h) => leafHash(Buffer.from(h, 'hex')));
  const path: Buffer[] = [];
  // PATH(m, D[lo:hi]) from RFC 6962 2.1.1, iteratively from the root down, then reversed.
  let lo = 0;
  let hi = leaves.length;
  let m = index;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (m < k) {
      path.push(subtree(leaves, lo + k, hi));
      hi = lo + k;
    } else {
      path.push(subtree(leaves, lo, lo + k));
      lo += k;
      m -= k;
    }
  }
  return path.reverse().map((b) => b.toString('hex'));
}

/** True when `entryHashHex` is leaf `index` of a tree of `size` leaves with root `rootHex`. */
export function verifyInclusion(entryHashHex: string, index: number, size: number, proofHex: readonly string[], rootHex: string): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  if (!/^[0-9a-f]{64}$/.test(entryHashHex) || !/^[0-9a-f]{64}$/.test(rootHex) || !proofHex.every((p) => /^[0-9a-f]{64}$/.test(p))) return false;
  let fn = index;
  let sn = size - 1;
  let r = leafHash(Buffer.from(entryHashHex, 'hex'));
  for (const p of proofHex) {
    if (sn === 0) return false;
    const node = Buffer.from(p, 'hex');
    if ((fn & 1) === 1 || fn === sn) {
      r = nodeHash(node, r);
      if ((fn & 1) === 0) {
        while ((fn & 1) === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, node);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.toString('hex') === rootHex;
}
