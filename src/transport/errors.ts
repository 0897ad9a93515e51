// Errors of links and transports (connection, handshake, local misuse), with stable codes.
import { SluiceError } from '../errors.ts';

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

export class TransportError extends SluiceError {
  declare readonly code: TransportErrorCode;
  constructor(code: TransportErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

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

export class HandshakeError extends SluiceError {
  declare readonly code: HandshakeErrorCode;
  constructor(code: HandshakeErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
