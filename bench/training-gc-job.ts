// The job of bench/training-gc.ts: pushes N tensors of M MiB (one buffer, reused) to a peer.
import { randomBytes } from 'node:crypto';
import { connect } from '../src/index.ts';

const [address, peer, n, mib] = process.argv.slice(2) as [string, string, string, string];
const client = connect(address);
const data = randomBytes(Number(mib) * 1024 * 1024);
for (let i = 0; i < Number(n); i++) await client.push(peer, `gc/t${i}`, data, { transferId: `gc-${i}` });
client.close();
