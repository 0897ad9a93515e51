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
