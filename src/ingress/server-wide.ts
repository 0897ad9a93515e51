// Answers of server-wide calls merged over the egress peers: RepositoryIndex and the
// ModelStatistics of every model. Each peer's answer keeps only the models the route table
// sends to that peer (what a client can reach through this ingress), each model once.
import { decodeMessage, encodeMessage } from '../kserve/proto.ts';

export type ServerWideMethod = 'RepositoryIndex' | 'ModelStatistics';

export interface PeerAnswer {
  peer: string;
  /** The serialized response of the peer's model server. */
  payload: Buffer;
}

interface Named {
  name: string;
  version: string;
}

function merged<T extends Named>(answers: readonly PeerAnswer[], list: (payload: Buffer) => T[], reachable: (model: string, peer: string) => boolean): T[] {
  const seen = new Set<string>();
  const out: T[] = [];
  for (const a of answers) {
    for (const entry of list(a.payload)) {
      const key = `${entry.name}\u0000${entry.version}`;
      if (seen.has(key) || !reachable(entry.name, a.peer)) continue;
      seen.add(key);
      out.push(entry);
    }
  }
  return out.sort((x, y) => (x.name === y.name ? x.version.localeCompare(y.version) : x.name.localeCompare(y.name)));
}

export function mergeServerWide(method: ServerWideMethod, answers: readonly PeerAnswer[], reachable: (model: string, peer: string) => boolean): Buffer {
  if (method === 'RepositoryIndex') {
    const models = merged(answers, (p) => decodeMessage<{ models: Named[] }>('RepositoryIndexResponse', p).models, reachable);
    return encodeMessage('RepositoryIndexResponse', { models });
  }
  const modelStats = merged(answers, (p) => decodeMessage<{ modelStats: Named[] }>('ModelStatisticsResponse', p).modelStats, reachable);
  return encodeMessage('ModelStatisticsResponse', { modelStats });
}
