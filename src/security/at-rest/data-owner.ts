// Whose data key seals data at rest that arrives with a numeric tenant id (training frames carry
// the sender's tenant id): the configured tenant of that id, else a reserved owner name no
// configured tenant can have (tenant names start with a letter or digit), so unattributed data
// is sealed too and never under a real tenant's key.
export const NODE_OWNER = '_node';

export function dataOwnerNames(tenants: readonly { id: number; name: string }[]): (id: number) => string {
  const byId = new Map(tenants.map((t) => [t.id, t.name]));
  return (id) => byId.get(id) ?? (id === 0 ? NODE_OWNER : `_tenant-${id}`);
}
