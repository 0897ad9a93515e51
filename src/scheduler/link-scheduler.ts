// The outbound scheduler of one link: decides which frame leaves next. The link asks for one
// frame at a time and only when the wire can take it, so nothing waits in front of a new
// inference frame but the frame currently being written: with training cut into chunks of
// `frameBytes.training`, an inference frame waits for at most one training chunk.
//
// This is the seam for fairness and rate control: FairLinkScheduler (fair-link-scheduler.ts:
// DRR between flows, AIMD-paced bulk) implements LinkScheduler and is passed to the transport
// as a factory.
// Contract for every implementation:
//   - frames of one message leave in order, first fragment first, last fragment last;
//   - messages sharing (class, streamId) are never interleaved (the receiver rebuilds one
//     message per (class, stream) at a time) and leave in the order they were enqueued;
//   - a frame's payload is at most the link's maxFramePayload.
import type { TrafficClass } from '../transport/types.ts';
import { Fifo } from './fifo.ts';
import { MessageCursor } from './message-cursor.ts';

export interface QueuedMessage {
  readonly cls: TrafficClass;
  readonly kind: number;
  readonly streamId: number;
  readonly tenant: number;
  /** Flow id for fairness within a class. */
  readonly flow: number;
  readonly cursor: MessageCursor;
  /** OutboundMessage.bodyReleased: the link calls it after sealing the last frame, or when it drops the message. */
  readonly bodyReleased?: (() => void) | undefined;
}

export interface ScheduledFrame {
  readonly msg: QueuedMessage;
  readonly first: boolean;
  readonly last: boolean;
  /** The frame's payload as views into the message's buffers. */
  readonly parts: Buffer[];
  readonly length: number;
}

export interface LinkScheduler {
  enqueue(msg: QueuedMessage): void;
  /** The next frame to put on the wire, or undefined when nothing is queued. */
  next(): ScheduledFrame | undefined;
  /** Payload bytes enqueued and not yet handed out by next(). */
  readonly queuedBytes: number;
  readonly queuedMessages: number;
  /** Drops everything queued (the link is closing); returns the messages dropped. */
  clear(): QueuedMessage[];
  /**
   * Bytes the link may seal, or take in and decrypt, in one turn of the event loop before it
   * yields; undefined: the transport's own default. Everything on a process shares one event
   * loop, so this bounds how long inference work waits behind this link's bulk work.
   */
  turnBytes?(): number | undefined;
}

export interface LinkSchedulerOptions {
  /** Largest frame payload per class: the chunk size an urgent frame may wait behind. */
  frameBytes: Readonly<Record<TrafficClass, number>>;
  /**
   * Asks the link to call next() again soon. A scheduler that paces a class (next() returns
   * undefined while frames are queued) calls it when the pace allows the next frame.
   */
  wake?: () => void;
}

export type LinkSchedulerFactory = (opts: LinkSchedulerOptions) => LinkScheduler;

/** Strict priority control > inference > training, FIFO within a class. */
export class PriorityLinkScheduler implements LinkScheduler {
  static readonly ORDER: readonly TrafficClass[] = ['control', 'inference', 'training'];
  readonly #queues: Record<TrafficClass, Fifo<QueuedMessage>> = { control: new Fifo(), inference: new Fifo(), training: new Fifo() };
  readonly #frameBytes: Readonly<Record<TrafficClass, number>>;
  #queuedBytes = 0;
  #queuedMessages = 0;

  constructor(opts: LinkSchedulerOptions) {
    for (const cls of PriorityLinkScheduler.ORDER) {
      const n = opts.frameBytes[cls];
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`frameBytes.${cls} must be a positive integer, got ${n}`);
    }
    this.#frameBytes = { ...opts.frameBytes };
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  get queuedMessages(): number {
    return this.#queuedMessages;
  }

  enqueue(msg: QueuedMessage): void {
    this.#queues[msg.cls].push(msg);
    this.#queuedBytes += msg.cursor.remaining;
    this.#queuedMessages += 1;
  }

  next(): ScheduledFrame | undefined {
    for (const cls of PriorityLinkScheduler.ORDER) {
      const q = this.#queues[cls];
      const msg = q.peek();
      if (msg === undefined) continue;
      const before = msg.cursor.taken;
      const parts = msg.cursor.take(this.#frameBytes[cls]);
      const length = msg.cursor.taken - before;
      const first = before === 0;
      const last = msg.cursor.remaining === 0;
      if (last) {
        q.shift();
        this.#queuedMessages -= 1;
      }
      this.#queuedBytes -= length;
      return { msg, first, last, parts, length };
    }
    return undefined;
  }

  clear(): QueuedMessage[] {
    const dropped: QueuedMessage[] = [];
    for (const cls of PriorityLinkScheduler.ORDER) dropped.push(...this.#queues[cls].drain());
    this.#queuedBytes = 0;
    this.#queuedMessages = 0;
    return dropped;
  }
}
