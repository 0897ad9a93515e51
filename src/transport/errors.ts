// Errors of links and transports (connection, handshake, local misuse), with stable codes, and
// which of the errors that end a link or a handshake are refusals of the peer.
import { CodedError } from '../errors.ts';
import { WireErrorCode } from '../wire/errors.ts';

export const TransportErrorCode = {
  /** The connection could not be made (refused, unreachable). */
  CONNECT: 'SLUICE_ERR_TRANSPORT_CONNECT',
  /** connect() or the handshake did not finish in time. */
  TIMEOUT: 'SLUICE_ERR_TRANSPORT_TIMEOUT',
  /** The peer went away without closing the link (reset, end of stream, killed). */
  PEER_GONE: 'SLUICE_ERR_TRANSPORT_PEER_GONE',
  /** The transport is not available here (no RDMA device, unknown name). */
  UNAVAILABLE: 'SLUICE_ERR_TRANSPORT_UNAVAILABLE',
  /** send() on a link that is closed or closing. */
  LINK_CLOSED: 'SLUICE_ERR_LINK_CLOSED',
  /** send() of a message larger than maxMessageBytes. */
  MESSAGE_TOO_BIG: 'SLUICE_ERR_LINK_MESSAGE_TOO_BIG',
  /** send() of a message with an invalid field (kind, stream id, tenant, class). */
  INVALID_MESSAGE: 'SLUICE_ERR_LINK_INVALID_MESSAGE',
  /** send() of a class the link's segment may not carry. */
  WRONG_SEGMENT: 'SLUICE_ERR_LINK_WRONG_SEGMENT',
} as const;
export type TransportErrorCode = (typeof TransportErrorCode)[keyof typeof TransportErrorCode];

export class TransportError extends CodedError<TransportErrorCode> {}

export const HandshakeErrorCode = {
  /** The two ends do not hold the same segment key. */
  AUTH: 'SLUICE_ERR_HANDSHAKE_AUTH',
  /** The two ends serve different segments. */
  SEGMENT: 'SLUICE_ERR_HANDSHAKE_SEGMENT',
  /** No wire version in common. */
  VERSION: 'SLUICE_ERR_HANDSHAKE_VERSION',
  /** The peer sent something that is not the handshake. */
  PROTOCOL: 'SLUICE_ERR_HANDSHAKE_PROTOCOL',
  /** The handshake did not complete in time. */
  TIMEOUT: 'SLUICE_ERR_HANDSHAKE_TIMEOUT',
  /** The peer closed the connection during the handshake. */
  CLOSED: 'SLUICE_ERR_HANDSHAKE_CLOSED',
  /** The listener has too many handshakes in progress. */
  BUSY: 'SLUICE_ERR_HANDSHAKE_BUSY',
} as const;
export type HandshakeErrorCode = (typeof HandshakeErrorCode)[keyof typeof HandshakeErrorCode];

export class HandshakeError extends CodedError<HandshakeErrorCode> {}

export type PeerRefusalKind = 'crypto' | 'policy';

/** The codes that mean the peer was refused, with a short constant reason (a metric label). */
const PEER_REFUSALS: Readonly<Record<string, readonly [PeerRefusalKind, string]>> = {
  [WireErrorCode.AUTH]: ['crypto', 'auth_tag'],
  [WireErrorCode.REPLAY]: ['crypto', 'replay'],
  [WireErrorCode.NONCE]: ['crypto', 'nonce'],
  [WireErrorCode.KEY]: ['crypto', 'key_id'],
  [WireErrorCode.SEQUENCE_GAP]: ['crypto', 'sequence_gap'],
  [HandshakeErrorCode.AUTH]: ['crypto', 'handshake_auth'],
  [WireErrorCode.SEGMENT]: ['policy', 'cross_segment'],
  [WireErrorCode.CLASS]: ['policy', 'wrong_class'],
  [HandshakeErrorCode.SEGMENT]: ['policy', 'handshake_segment'],
};

/**
 * Whether an error code that ended a link or a handshake is a refusal of the peer: crypto
 * (tampered, replayed, removed frames, wrong key) or policy (the other segment or class).
 * Undefined for everything else (malformed bytes, timeouts, resets).
 */
export function peerRefusal(code: unknown): { kind: PeerRefusalKind; reason: string } | undefined {
  if (typeof code !== 'string') return undefined;
  const hit = PEER_REFUSALS[code];
  return hit === undefined ? undefined : { kind: hit[0], reason: hit[1] };
}
