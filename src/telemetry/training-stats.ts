// Counters of training transfers, kept where transfers start and end (TrainingNode) and read by
// the metrics registry at scrape time. Bytes are tensor bytes acknowledged by the receiver (the
// sender's view) or written to the sink (the receiver's), counted once: a resumed transfer only
// adds what it moves after its resume offset.
export type TransferDirection = 'outbound' | 'inbound';

/** What the stats need to know of a live transfer (TransferSummary satisfies it). */
export interface TransferProgress {
  readonly id: string;
  readonly direction: TransferDirection;
  readonly acked: number;
  readonly state: string;
}

export class TrainingStats {
  /** Transfers begun, by direction. */
  readonly started: Record<TransferDirection, number> = { outbound: 0, inbound: 0 };
  /** Transfers continued from an offset (a resume), by direction. */
  readonly resumes: Record<TransferDirection, number> = { outbound: 0, inbound: 0 };
  /** Finished transfers by direction and final state (completed, failed, cancelled). */
  readonly ended = new Map<string, { direction: TransferDirection; state: string; n: number }>();
  /** Failed or cancelled transfers by direction and gRPC status name (DATA_LOSS, UNAVAILABLE, ...). */
  readonly failures = new Map<string, { direction: TransferDirection; status: string; n: number }>();
  private readonly bytesDone: Record<TransferDirection, number> = { outbound: 0, inbound: 0 };
  /** Bytes already counted per live transfer. */
  private readonly counted = new Map<string, number>();
  private live: () => Iterable<TransferProgress> = () => [];

  /** Where the live transfers are read from at scrape time (the training node). */
  setLiveSource(read: () => Iterable<TransferProgress>): void {
    this.live = read;
  }

  /** A transfer began (or was resumed from `offset`: only what follows is counted). */
  begin(direction: TransferDirection, id: string, offset: number, resumed: boolean): void {
    this.started[direction]++;
    if (resumed) this.resumes[direction]++;
    this.counted.set(`${direction}/${id}`, offset);
  }

  /** Bytes below `offset` of a live transfer were moved before (a resume): never count them. */
  skipTo(direction: TransferDirection, id: string, offset: number): void {
    const key = `${direction}/${id}`;
    const before = this.counted.get(key);
    if (before !== undefined && offset > before) this.counted.set(key, offset);
  }

  /** A transfer ended; `status` is the failure's status name (absent when it completed). */
  end(t: TransferProgress, status?: string): void {
    this.addBytes(t);
    this.counted.delete(`${t.direction}/${t.id}`);
    bump(this.ended, `${t.direction}/${t.state}`, { direction: t.direction, state: t.state });
    if (t.state !== 'completed') bump(this.failures, `${t.direction}/${status ?? 'UNKNOWN'}`, { direction: t.direction, status: status ?? 'UNKNOWN' });
  }

  /** Bytes moved so far, by direction (ended transfers plus live ones' progress). */
  bytes(): Record<TransferDirection, number> {
    for (const t of this.live()) this.addBytes(t);
    return { ...this.bytesDone };
  }

  /** Live transfers by direction and state, right now. */
  active(): Map<string, { direction: TransferDirection; state: string; n: number }> {
    const out = new Map<string, { direction: TransferDirection; state: string; n: number }>();
    for (const t of this.live()) bump(out, `${t.direction}/${t.state}`, { direction: t.direction, state: t.state });
    return out;
  }

  private addBytes(t: TransferProgress): void {
    const key = `${t.direction}/${t.id}`;
    const before = this.counted.get(key);
    if (before === undefined) return;
    if (t.acked > before) {
      this.bytesDone[t.direction] += t.acked - before;
      this.counted.set(key, t.acked);
    }
  }
}

function bump<T extends object>(m: Map<string, T & { n: number }>, key: string, fields: T): void {
  const e = m.get(key);
  if (e === undefined) m.set(key, { ...fields, n: 1 });
  else e.n++;
}
