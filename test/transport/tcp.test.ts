import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import { runTransportConformance } from './conformance.ts';

runTransportConformance('tcp', (opts) => new TcpTransport(opts), { registryName: 'tcp' });
