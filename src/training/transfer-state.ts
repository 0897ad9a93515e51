// States a transfer goes through, shared by both directions and the gRPC status messages.
export type TransferState = 'connecting' | 'sending' | 'resuming' | 'verifying' | 'completed' | 'failed' | 'cancelled' | 'receiving';

export type Direction = 'outbound' | 'inbound';

export interface TransferSummary {
  id: string;
  direction: Direction;
  /** Peer name (outbound) or sending node name (inbound). */
  peer: string;
  tensor: import('./tensor-meta.ts').TensorMeta;
  total: number;
  acked: number;
  state: TransferState;
  sink: import('./tensor-meta.ts').Sink;
  sha256?: Buffer;
  error?: string;
  /** The status of a failure or cancellation (with `error`). */
  errorStatus?: import('./errors.ts').TransferStatusCode;
}

/**
 * What each side of a transfer reports for the node's log: a resume (with the offset it
 * continues from), the completion, a failure (with its status), and where a DATA_LOSS partial
 * was quarantined. A plain callback so the host decides where it goes (pino, a worker message).
 */
export interface TransferEvent {
  event: 'resumed' | 'completed' | 'failed' | 'cancelled' | 'quarantined';
  direction: Direction;
  id: string;
  peer: string;
  total: number;
  /** The tensor's name (inbound events). */
  name?: string;
  offset?: number;
  sha256?: string;
  status?: string;
  error?: string;
  /** The quarantined partial file. */
  path?: string;
}

export type TransferEventLog = (e: TransferEvent) => void;
