// Loads proto/sluice/v1/tensor_transfer.proto once: the server and the TypeScript client share
// the same definitions (camelCase fields, uint64 as Number, enums as their names, oneof names).
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

export const TENSOR_TRANSFER_PROTO = fileURLToPath(new URL('../../proto/sluice/v1/tensor_transfer.proto', import.meta.url));
export const TENSOR_TRANSFER_SERVICE = 'sluice.v1.TensorTransfer';

let cached: grpc.ServiceClientConstructor | undefined;

/** The generated service client constructor (its `.service` is the server-side definition). */
export function tensorTransferClientConstructor(): grpc.ServiceClientConstructor {
  if (cached === undefined) {
    const def = loadSync(TENSOR_TRANSFER_PROTO, { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { sluice: { v1: { TensorTransfer: grpc.ServiceClientConstructor } } };
    cached = pkg.sluice.v1.TensorTransfer;
  }
  return cached;
}

// ---- message shapes as proto-loader decodes/encodes them ----

export type SinkName = 'SINK_UNSPECIFIED' | 'SINK_SPOOL' | 'SINK_STREAM';
export type TransferStateName =
  | 'TRANSFER_STATE_UNSPECIFIED'
  | 'CONNECTING'
  | 'SENDING'
  | 'RESUMING'
  | 'VERIFYING'
  | 'COMPLETED'
  | 'FAILED'
  | 'CANCELLED'
  | 'RECEIVING';

export interface TensorMetaMsg {
  name: string;
  datatype: string;
  shape: number[];
  attributes: Record<string, string>;
}

export interface PushRequestMsg {
  msg?: 'start' | 'chunk' | 'finish';
  start?: { peer: string; tensor?: TensorMetaMsg; totalBytes: number; transferId: string; resume: boolean; sink: SinkName };
  chunk?: { offset: number; data: Buffer };
  finish?: { sha256: Buffer };
}

export interface PushResponseMsg {
  msg?: 'accepted' | 'ack' | 'result';
  accepted?: { transferId: string; offset: number; maxChunkBytes: number; windowBytes: number };
  ack?: { ackedBytes: number };
  result?: { transferId: string; totalBytes: number; sha256: Buffer; seconds: number; resumes: number; resentChunks: number };
}

export interface TransferStatusMsg {
  transferId: string;
  direction: 'DIRECTION_UNSPECIFIED' | 'OUTBOUND' | 'INBOUND';
  peer: string;
  tensor?: TensorMetaMsg;
  totalBytes: number;
  ackedBytes: number;
  state: TransferStateName;
  sink: SinkName;
  sha256: Buffer;
  error: string;
}

export interface ReceiveEventMsg {
  event?: 'begin' | 'data' | 'end' | 'aborted';
  begin?: { transferId: string; from: string; tensor?: TensorMetaMsg; totalBytes: number; sink: SinkName; offset: number };
  data?: { transferId: string; offset: number; data: Buffer };
  end?: { transferId: string; totalBytes: number; sha256: Buffer };
  aborted?: { transferId: string; reason: string };
}
