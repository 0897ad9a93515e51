// Merkle tree head over a list of entry hashes, as in RFC 6962 (Certificate Transparency):
// leaves and inner nodes are domain-separated so a leaf can never pose as a subtree.
import { createHash } from 'node:crypto';

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

export function leafHash(entryHash: Buffer): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(entryHash).digest();
}

export function nodeHash(left: Buffer, right: Buffer): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** Largest power of two strictly less than n (n >= 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

export function subtree(leaves: readonly Buffer[], lo: number, hi: number): Buffer {
  const n = hi - lo;
  if (n === 1) return leaves[lo] as Buffer;
  const k = splitPoint(n);
  return nodeHash(subtree(leaves, lo, lo + k), subtree(leaves, lo + k, hi));
}

/** Root over the given entry hashes (hex). The empty tree's root is SHA-256 of nothing. */
export function merkleRoot(entryHashesHex: readonly string[]): string {
  if (entryHashesHex.length === 0) return createHash('sha256').digest('hex');
  const leaves = entryHashesHex.map((h) => leafHash(Buffer.from(h, 'hex')));
  return subtree(leaves, 0, leaves.length).toString('hex');
}
