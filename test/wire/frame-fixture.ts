// A sealing end and a receiving end sharing one direction's keys, as two linked peers have
// after a handshake, for frame-level tests without sockets.
import { randomBytes } from 'node:crypto';
import { nodeCryptoAeadFactory } from '../../src/crypto/aead-factory.ts';
import { DEFAULT_KEY_LIMITS, type KeyLimits } from '../../src/crypto/key-limits.ts';
import { deriveLinkSecrets, transcriptHash, type HandshakeInputs } from '../../src/crypto/key-schedule.ts';
import { TrafficKeys } from '../../src/crypto/traffic-keys.ts';
import { MessageCursor } from '../../src/scheduler/message-cursor.ts';
import type { InboundMessage, SegmentName, TrafficClass } from '../../src/transport/types.ts';
import { closeFrameSpec } from '../../src/wire/close-frame.ts';
import { FrameFlags, FrameType } from '../../src/wire/frame-header.ts';
import { FrameReceiver } from '../../src/wire/frame-receiver.ts';
import { FrameSealer } from '../../src/wire/frame-sealer.ts';

export interface FramePairOptions {
  segment?: SegmentName;
  keyLimits?: KeyLimits;
  maxMessageBytes?: number;
  maxReassemblyBytes?: number;
  maxFramePayload?: number;
  /** Use the receiving end of a different link (its keys differ). */
  otherLink?: boolean;
  /** Segment the sealer writes into headers (default: the receiver's). */
  sealerSegment?: SegmentName;
}

export interface ReceivingEnd {
  receiver: FrameReceiver;
  messages: InboundMessage[];
  closes: { code: number; reason: string }[];
}

export interface FramePair extends ReceivingEnd {
  sealer: FrameSealer;
  /** Another receiving end in the initial state of this link (to replay the same frames into). */
  freshReceiver(): ReceivingEnd;
  /** Seals one message into frames of at most frameBytes payload (with REKEY frames where due). */
  seal(msg: { cls: TrafficClass; kind?: number; streamId?: number; tenant?: number; body: Buffer | Buffer[] }, frameBytes?: number): Buffer[];
  sealClose(code: number, reason: string): Buffer;
}

function inputs(segment: SegmentName): HandshakeInputs {
  const initiatorNonce = randomBytes(32);
  const acceptorNonce = randomBytes(32);
  return { segmentKey: randomBytes(32), segment, initiatorNonce, acceptorNonce, transcriptHash: transcriptHash([initiatorNonce, acceptorNonce]) };
}

export function makeFramePair(opts: FramePairOptions = {}): FramePair {
  const segment = opts.segment ?? 'training';
  const limits = opts.keyLimits ?? DEFAULT_KEY_LIMITS;
  const link = inputs(segment);
  const initiator = deriveLinkSecrets(link, 'initiator');
  const acceptor = deriveLinkSecrets(opts.otherLink === true ? inputs(segment) : link, 'acceptor');
  const sealer = new FrameSealer(new TrafficKeys(initiator.send, initiator.sendDirection, nodeCryptoAeadFactory, limits), opts.sealerSegment ?? segment);
  const maxMessageBytes = opts.maxMessageBytes ?? 16 * 1024 * 1024;
  const receiveSecret = Buffer.from(acceptor.receive);
  const freshReceiver = (): ReceivingEnd => {
    const messages: InboundMessage[] = [];
    const closes: { code: number; reason: string }[] = [];
    const receiver = new FrameReceiver(
      {
        segment,
        keys: new TrafficKeys(receiveSecret, acceptor.receiveDirection, nodeCryptoAeadFactory, limits),
        maxMessageBytes,
        maxReassemblyBytes: opts.maxReassemblyBytes ?? 2 * maxMessageBytes,
        maxPendingMessages: 64,
        maxFramePayload: opts.maxFramePayload,
      },
      { message: (m) => messages.push(m), close: (code, reason) => closes.push({ code, reason }) },
    );
    return { receiver, messages, closes };
  };
  const { receiver, messages, closes } = freshReceiver();
  return {
    sealer,
    freshReceiver,
    receiver,
    messages,
    closes,
    seal(msg, frameBytes = 64 * 1024) {
      const cursor = new MessageCursor(Array.isArray(msg.body) ? msg.body : [msg.body]);
      const frames: Buffer[] = [];
      do {
        const first = cursor.taken === 0;
        const parts = cursor.take(frameBytes);
        const length = parts.reduce((n, p) => n + p.byteLength, 0);
        if (sealer.rekeyDue(length)) frames.push(sealer.sealRekey());
        frames.push(
          sealer.seal({
            type: FrameType.DATA,
            cls: msg.cls,
            flags: (first ? FrameFlags.FIRST : 0) | (cursor.remaining === 0 ? FrameFlags.LAST : 0),
            streamId: msg.streamId ?? 1,
            kind: msg.kind ?? 1,
            tenant: msg.tenant ?? 0,
            messageLength: cursor.length,
            parts,
            payloadLength: length,
          }),
        );
      } while (cursor.remaining > 0);
      return frames;
    },
    sealClose(code, reason) {
      return sealer.seal(closeFrameSpec(code, reason));
    },
  };
}
