// Typed rejections of bytes received from a peer. Every malformed, truncated, oversized,
// replayed or tampered frame ends in one of these codes, never in a crash.
import { CodedError } from '../errors.ts';

export const WireErrorCode = {
  /** Fewer bytes than a header or a declared body: the stream ended inside a frame. */
  TRUNCATED: 'SLUICE_ERR_WIRE_TRUNCATED',
  /** A frame or message longer than the configured limit. */
  OVERSIZE: 'SLUICE_ERR_WIRE_OVERSIZE',
  /** The first bytes are not a sluice frame (or handshake record). */
  BAD_MAGIC: 'SLUICE_ERR_WIRE_BAD_MAGIC',
  /** A wire version this node does not speak. */
  VERSION: 'SLUICE_ERR_WIRE_VERSION',
  /** An unknown frame type, traffic class, flag or a non-zero reserved field; an inconsistent length. */
  MALFORMED: 'SLUICE_ERR_WIRE_MALFORMED',
  /** The frame names another segment than the link's. */
  SEGMENT: 'SLUICE_ERR_WIRE_SEGMENT',
  /** The traffic class may not travel on this segment. */
  CLASS: 'SLUICE_ERR_WIRE_CLASS',
  /** Sequence not strictly increasing: a frame seen before was sent again. */
  REPLAY: 'SLUICE_ERR_WIRE_REPLAY',
  /** A gap in the sequence: a frame was removed from the stream. */
  SEQUENCE_GAP: 'SLUICE_ERR_WIRE_SEQUENCE_GAP',
  /** The nonce is not the one the key schedule expects next. */
  NONCE: 'SLUICE_ERR_WIRE_NONCE',
  /** The key id is not the receiver's current key. */
  KEY: 'SLUICE_ERR_WIRE_KEY',
  /** The GCM tag does not authenticate header and payload: tampered or wrong key. */
  AUTH: 'SLUICE_ERR_WIRE_AUTH',
  /** Fragments out of order: a continuation without a first fragment, a message restarted, sizes that disagree. */
  FRAGMENT: 'SLUICE_ERR_WIRE_FRAGMENT',
} as const;

export type WireErrorCode = (typeof WireErrorCode)[keyof typeof WireErrorCode];

export class WireError extends CodedError<WireErrorCode> {}
