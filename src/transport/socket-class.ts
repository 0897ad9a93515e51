// Marks a link's TCP socket with its segment's class on the wire: IP_TOS (IPV6_TCLASS on IPv6)
// = DSCP << 2, then SO_PRIORITY (Linux resets the priority when the TOS is set, so the order
// matters). Node has no setsockopt for these; the native addon does it on the socket's fd.
import type net from 'node:net';
import { loadNativeAddon } from '../crypto/native-addon.ts';
import type { SegmentName, SocketClassOptions } from './types.ts';

/** Defaults per segment: inference AF41 (34) at priority 6, training CS1 (8) at priority 1. */
export const DEFAULT_SEGMENT_DSCP: Record<SegmentName, number> = { inference: 34, training: 8 };
export const SEGMENT_SO_PRIORITY: Record<SegmentName, number> = { inference: 6, training: 1 };

/** The class of a segment's links, from its configured DSCP (default per segment). */
export function segmentSocketClass(segment: SegmentName, dscp?: number): SocketClassOptions {
  return { dscp: dscp ?? DEFAULT_SEGMENT_DSCP[segment], priority: SEGMENT_SO_PRIORITY[segment] };
}

/** The OS file descriptor behind a connected node:net socket (-1 when there is none). */
export function socketFd(socket: net.Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/** Applies the class; false when the socket has no fd (closed) or the addon is missing. */
export function applySocketClass(socket: net.Socket, cls: SocketClassOptions): boolean {
  const fd = socketFd(socket);
  if (fd < 0) return false;
  loadNativeAddon().setSocketClass(fd, cls.dscp, cls.priority);
  return true;
}

/** What the kernel holds for the socket now: TOS byte and SO_PRIORITY (tests, diagnostics). */
export function readSocketClass(socket: net.Socket): { tos: number; priority: number; family: 'ipv4' | 'ipv6' } | undefined {
  const fd = socketFd(socket);
  return fd < 0 ? undefined : loadNativeAddon().getSocketClass(fd);
}
