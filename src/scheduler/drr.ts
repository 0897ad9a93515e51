// Deficit round robin (Shreedhar & Varghese) across flows of one traffic class: every backlogged
// flow gets `quantum` bytes of credit per round, so over any busy period the bytes served to two
// backlogged flows differ by at most quantum + the largest item. One tenant or job with a deep
// queue therefore cannot starve another. Items are served FIFO within a flow.
import { RingQueue } from './ring-queue.ts';

interface FlowState<T> {
  readonly id: number;
  readonly queue: RingQueue<{ item: T; bytes: number }>;
  deficit: number;
  bytes: number;
  active: boolean;
}

export interface DrrStats {
  flows: number;
  items: number;
  bytes: number;
}

export class DeficitRoundRobin<T> {
  private readonly flows = new Map<number, FlowState<T>>();
  /** Backlogged flows in round order; the head is the flow whose turn it is. */
  private readonly active = new RingQueue<FlowState<T>>();
  /** Whether the head flow already received its quantum for the current turn. */
  private headCredited = false;
  private totalItems = 0;
  private totalBytes = 0;

  constructor(readonly quantum: number) {
    if (!Number.isFinite(quantum) || quantum <= 0) throw new RangeError(`quantum must be a positive number of bytes, got ${quantum}`);
  }

  get items(): number {
    return this.totalItems;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get isEmpty(): boolean {
    return this.totalItems === 0;
  }

  push(flow: number, item: T, bytes: number): void {
    if (!(bytes >= 0)) throw new RangeError(`bytes must be >= 0, got ${bytes}`);
    let state = this.flows.get(flow);
    if (state === undefined) {
      state = { id: flow, queue: new RingQueue(), deficit: 0, bytes: 0, active: false };
      this.flows.set(flow, state);
    }
    state.queue.push({ item, bytes });
    state.bytes += bytes;
    this.totalItems++;
    this.totalBytes += bytes;
    if (!state.active) {
      state.active = true;
      state.deficit = 0;
      this.active.push(state);
    }
  }

  /** Size of the item that shift() would return next, without removing it (undefined when empty). */
  peekBytes(): number | undefined {
    const flow = this.selectFlow();
    return flow?.queue.peek()?.bytes;
  }

  /** Removes and returns the next item in DRR order. */
  shift(): T | undefined {
    const flow = this.selectFlow();
    if (flow === undefined) return undefined;
    const head = flow.queue.shift();
    if (head === undefined) return undefined; // unreachable: active flows are non-empty
    flow.deficit -= head.bytes;
    flow.bytes -= head.bytes;
    this.totalItems--;
    this.totalBytes -= head.bytes;
    if (flow.queue.length === 0) {
      // An idle flow keeps no credit (classic DRR), and forgets its state to bound memory.
      this.active.shift();
      this.headCredited = false;
      flow.active = false;
      flow.deficit = 0;
      this.flows.delete(flow.id);
    }
    return head.item;
  }

  /** Drops every queued item of one flow (e.g. a cancelled transfer); returns the items dropped. */
  removeFlow(flow: number): T[] {
    const state = this.flows.get(flow);
    if (state === undefined) return [];
    const dropped: T[] = [];
    for (const e of state.queue) dropped.push(e.item);
    this.totalItems -= state.queue.length;
    this.totalBytes -= state.bytes;
    state.queue.clear();
    state.bytes = 0;
    this.flows.delete(flow);
    if (state.active) {
      const wasHead = this.active.peek() === state;
      const n = this.active.length;
      for (let i = 0; i < n; i++) {
        const f = this.active.shift() as FlowState<T>;
        if (f !== state) this.active.push(f);
      }
      // A full rotation keeps the round order. If the removed flow had the turn, the next flow
      // starts a fresh one; otherwise the head keeps its credited turn.
      if (wasHead) this.headCredited = false;
      state.active = false;
    }
    return dropped;
  }

  stats(): DrrStats {
    return { flows: this.flows.size, items: this.totalItems, bytes: this.totalBytes };
  }

  /** Bytes queued for one flow. */
  flowBytes(flow: number): number {
    return this.flows.get(flow)?.bytes ?? 0;
  }

  /**
   * Advances the round until the head flow can afford its head item. Each visit to a flow in a
   * new turn adds one quantum; a flow that cannot afford its head moves to the back keeping its
   * deficit. Terminates because every full round adds a quantum to every flow.
   */
  private selectFlow(): FlowState<T> | undefined {
    for (;;) {
      const flow = this.active.peek();
      if (flow === undefined) return undefined;
      if (!this.headCredited) {
        flow.deficit += this.quantum;
        this.headCredited = true;
      }
      const head = flow.queue.peek();
      if (head !== undefined && head.bytes <= flow.deficit) return flow;
      this.active.shift();
      this.active.push(flow);
      this.headCredited = false;
    }
  }
}
