// Errors of the RDMA transport, with stable codes. Failed work completions carry the verbs
// status name (IBV_WC_*) and ibv_wc_status_str's text.
import { SluiceError } from '../../errors.ts';

export const RdmaErrorCode = {
  /** This build or kernel has no verbs support at all. */
  UNAVAILABLE: 'SLUICE_ERR_RDMA_UNAVAILABLE',
  /** No device matches what was asked for (or there is none). */
  NO_DEVICE: 'SLUICE_ERR_RDMA_NO_DEVICE',
  /** Opening or querying a device failed. */
  DEVICE: 'SLUICE_ERR_RDMA_DEVICE',
  /** The device's port is not ACTIVE. */
  PORT_DOWN: 'SLUICE_ERR_RDMA_PORT_DOWN',
  /** A verbs call (create QP, register memory, post) failed. */
  VERBS: 'SLUICE_ERR_RDMA_VERBS',
  /** A work request completed with an error status. */
  COMPLETION: 'SLUICE_ERR_RDMA_COMPLETION',
  /** The peer broke the RDMA link protocol (no immediate, too much credit, bad exchange). */
  PROTOCOL: 'SLUICE_ERR_RDMA_PROTOCOL',
  /** A send on a queue pair that already failed. */
  LINK_FAILED: 'SLUICE_ERR_RDMA_LINK_FAILED',
  /** A send without credit (a bug in the caller: credits are checked first). */
  NO_CREDIT: 'SLUICE_ERR_RDMA_NO_CREDIT',
} as const;
export type RdmaErrorCode = (typeof RdmaErrorCode)[keyof typeof RdmaErrorCode];

const CODES: ReadonlySet<string> = new Set(Object.values(RdmaErrorCode));

export class RdmaError extends SluiceError {
  declare readonly code: RdmaErrorCode;
  /** For COMPLETION: the IBV_WC_* name of the status. */
  readonly wcStatus: string | undefined;
  constructor(code: RdmaErrorCode, message: string, options?: { cause?: unknown; wcStatus?: string }) {
    super(code, message, options);
    this.wcStatus = options?.wcStatus;
  }
}

/** Wraps an error thrown by the addon ({code, message}) in an RdmaError. */
export function fromNative(err: unknown, context?: string): RdmaError {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' && CODES.has(e.code) ? (e.code as RdmaErrorCode) : RdmaErrorCode.VERBS;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return new RdmaError(code, context === undefined ? message : `${context}: ${message}`, { cause: err });
}

// enum ibv_wc_status, in order.
const WC_STATUS_NAMES = [
  'IBV_WC_SUCCESS',
  'IBV_WC_LOC_LEN_ERR',
  'IBV_WC_LOC_QP_OP_ERR',
  'IBV_WC_LOC_EEC_OP_ERR',
  'IBV_WC_LOC_PROT_ERR',
  'IBV_WC_WR_FLUSH_ERR',
  'IBV_WC_MW_BIND_ERR',
  'IBV_WC_BAD_RESP_ERR',
  'IBV_WC_LOC_ACCESS_ERR',
  'IBV_WC_REM_INV_REQ_ERR',
  'IBV_WC_REM_ACCESS_ERR',
  'IBV_WC_REM_OP_ERR',
  'IBV_WC_RETRY_EXC_ERR',
  'IBV_WC_RNR_RETRY_EXC_ERR',
  'IBV_WC_LOC_RDD_VIOL_ERR',
  'IBV_WC_REM_INV_RD_REQ_ERR',
  'IBV_WC_REM_ABORT_ERR',
  'IBV_WC_INV_EECN_ERR',
  'IBV_WC_INV_EEC_STATE_ERR',
  'IBV_WC_FATAL_ERR',
  'IBV_WC_RESP_TIMEOUT_ERR',
  'IBV_WC_GENERAL_ERR',
  'IBV_WC_TM_ERR',
  'IBV_WC_TM_RNDV_INCOMPLETE',
];

export function wcStatusName(status: number): string {
  return WC_STATUS_NAMES[status] ?? `IBV_WC_STATUS_${status}`;
}

/** What each status most likely means for a link, said for operators. */
export function wcStatusHint(status: number): string {
  switch (WC_STATUS_NAMES[status]) {
    case 'IBV_WC_RETRY_EXC_ERR':
      return 'the peer stopped acknowledging: it went away or the network path is down';
    case 'IBV_WC_RNR_RETRY_EXC_ERR':
      return 'the peer had no receive posted (flow control violated)';
    case 'IBV_WC_WR_FLUSH_ERR':
      return 'the queue pair was already in error';
    case 'IBV_WC_REM_ACCESS_ERR':
    case 'IBV_WC_REM_INV_REQ_ERR':
    case 'IBV_WC_REM_OP_ERR':
      return 'the peer refused the request';
    case 'IBV_WC_LOC_LEN_ERR':
      return 'a message did not fit the receive buffer';
    default:
      return 'see ibv_poll_cq(3)';
  }
}
