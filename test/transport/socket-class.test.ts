// The class on the wire of TCP link sockets (segments.<name>.dscp): both ends of a real link on
// loopback, read back with getsockopt through the addon: IP_TOS (IPV6_TCLASS on ::1) = dscp << 2
// and SO_PRIORITY, which must survive the TOS being set after it would have reset it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { segmentSocketClass } from '../../src/transport/socket-class.ts';
import type { TcpLink } from '../../src/transport/tcp-link.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { Link, SegmentName } from '../../src/transport/types.ts';

async function linkPair(host: string, segment: SegmentName, dscp?: number): Promise<{ server: TcpLink; client: TcpLink; close: () => Promise<void> }> {
  const cls = segmentSocketClass(segment, dscp);
  const segmentKey = randomBytes(32);
  const serverSide = new TcpTransport({ socketClass: cls });
  const listener = await serverSide.listen({ segment, host, port: 0, segmentKey });
  const accepted = once(listener, 'link') as Promise<[Link]>;
  const client = (await new TcpTransport({ socketClass: cls }).connect({ segment, host, port: listener.address.port, segmentKey })) as TcpLink;
  const [server] = await accepted;
  return {
    server: server as TcpLink,
    client,
    close: async () => {
      await client.close();
      await server.close();
      await listener.close();
    },
  };
}

test('defaults: inference links AF41 (34) at priority 6, training links CS1 (8) at priority 1, on both ends', async () => {
  for (const [segment, tos, priority] of [
    ['inference', 34 << 2, 6],
    ['training', 8 << 2, 1],
  ] as const) {
    const p = await linkPair('127.0.0.1', segment);
    try {
      for (const end of [p.server, p.client]) assert.deepEqual(end.socketClass(), { tos, priority, family: 'ipv4' }, `${segment} ${end.role}`);
    } finally {
      await p.close();
    }
  }
});

test('a configured DSCP on IPv6 sets the traffic class of both ends', async () => {
  const p = await linkPair('::1', 'training', 46);
  try {
    for (const end of [p.server, p.client]) assert.deepEqual(end.socketClass(), { tos: 46 << 2, priority: 1, family: 'ipv6' });
  } finally {
    await p.close();
  }
});

test('out-of-range classes are refused by the native helper with a typed error', async () => {
  const p = await linkPair('127.0.0.1', 'inference');
  try {
    const fd = (p.client as unknown as { socket: { _handle: { fd: number } } }).socket._handle.fd;
    const { loadNativeAddon } = await import('../../src/crypto/native-addon.ts');
    assert.throws(() => loadNativeAddon().setSocketClass(fd, 64, 1), (e: Error & { code?: string }) => e.code === 'SLUICE_ERR_SOCKET_CLASS');
    assert.throws(() => loadNativeAddon().setSocketClass(fd, 8, 7), (e: Error & { code?: string }) => e.code === 'SLUICE_ERR_SOCKET_CLASS');
    assert.throws(() => loadNativeAddon().getSocketClass(-1), (e: Error & { code?: string }) => e.code === 'SLUICE_ERR_SOCKET_CLASS');
    assert.equal(p.client.socketClass()?.tos, 34 << 2, 'the link keeps its class');
  } finally {
    await p.close();
  }
});
