// Evidence packs kept on the node, encrypted at rest (security.atRest): `sluice evidence export`
// seals the pack under the data key of the tenant it is for (`--tenant`), or of the node's own
// owner for a node-wide pack, so `sluice tenant-key destroy` crypto-shreds a tenant's packs with
// the rest of its data. The `sluice evidence` commands that read a pack open it with the key
// store of the node's config; anything else sees an SLAR blob (docs/security.md, "Data at rest").
import { MAGIC } from '../security/at-rest/at-rest-format.ts';
import { NODE_OWNER } from '../security/at-rest/data-owner.ts';
import type { TenantKeyStore } from '../security/at-rest/tenant-key-store.ts';
import { EvidenceError } from './pack.ts';

/** Whether a pack file is sealed at rest (else it is the plain tar). */
export function isSealedPack(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && Buffer.from(bytes.buffer, bytes.byteOffset, MAGIC.length).equals(MAGIC);
}

/** Seals a pack for `tenant` (undefined: the node's own, for a pack of every tenant). */
export function sealPack(store: TenantKeyStore, tar: Buffer, tenant: string | undefined): Promise<Buffer> {
  return store.seal(tenant ?? NODE_OWNER, tar);
}

/** The tar of a pack file: opened with `store` when sealed (a destroyed tenant's pack is an AtRestError). */
export async function packTar(bytes: Buffer, store: TenantKeyStore | undefined): Promise<Buffer> {
  if (!isSealedPack(bytes)) return bytes;
  if (store === undefined) throw new EvidenceError('the pack is encrypted at rest: give --config with the node\'s security.atRest to open it');
  return store.open(bytes);
}
