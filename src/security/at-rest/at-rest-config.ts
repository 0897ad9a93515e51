// `security.atRest`: per-tenant encryption of data kept on the node (spooled training tensors,
// the PII vault, evidence packs kept on the node). docs/security.md, "Data at rest".
import { z } from 'zod';

export const atRestSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** The key-encryption key (32 bytes, raw or hex), mode 0600. Wraps every tenant's data keys. */
    kekFile: z.string().min(1).optional(),
    /** Earlier KEKs, kept only to unwrap keys not yet re-wrapped after a KEK rotation. */
    previousKekFiles: z.array(z.string().min(1)).default([]),
    /** The wrapped tenant data keys (JSON, mode 0600). */
    keyStore: z.string().min(1).default('/var/lib/sluice/tenant-keys.json'),
  })
  .prefault({})
  .superRefine((s, ctx) => {
    if (s.enabled && s.kekFile === undefined) ctx.addIssue({ code: 'custom', path: ['kekFile'], message: 'required when security.atRest.enabled is true' });
  });

export type AtRestConfig = z.infer<typeof atRestSchema>;
