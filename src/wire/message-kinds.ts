// Application message kinds carried in the frame header (u16). Each layer that sends messages
// over a link adds its kinds here, with a number unused so far; the transport never looks at
// them. 0xff00-0xffff are reserved for tests and benchmarks.
export const MessageKind = {
  /** An opaque message: the body's meaning is agreed by the two ends out of band. */
  RAW: 0,
  /** Inference path (src/wire/inference-envelope.ts): ingress -> egress, call the model server. */
  INFERENCE_CALL: 0x20,
  /** Inference path: egress -> ingress, the model server's answer or why there is none. */
  INFERENCE_REPLY: 0x21,
  /** Inference path: ingress -> egress, the caller is gone; stop the upstream call. */
  INFERENCE_CANCEL: 0x22,
  /** Training transfers (src/training/peer-messages.ts): sender -> receiver, start or resume a tensor. */
  TRAINING_OPEN: 0x40,
  /** Training: receiver -> sender, where to continue (and whether the tensor is already complete). */
  TRAINING_OPENED: 0x41,
  /** Training: sender -> receiver, bytes of the tensor at an offset, with their CRC-32. */
  TRAINING_CHUNK: 0x42,
  /** Training: receiver -> sender, bytes written to the sink (cumulative). */
  TRAINING_ACK: 0x43,
  /** Training: receiver -> sender, re-send from an offset (bad CRC or a gap). */
  TRAINING_NACK: 0x44,
  /** Training: sender -> receiver, all bytes sent; the expected SHA-256. */
  TRAINING_FINISH: 0x45,
  /** Training: receiver -> sender, SHA-256 verified, the tensor is delivered. */
  TRAINING_RESULT: 0x46,
  /** Training: receiver -> sender, the transfer failed (status and reason). */
  TRAINING_ERROR: 0x47,
  /** Training: sender -> receiver, the transfer is cancelled; discard it. */
  TRAINING_CANCEL: 0x48,
  /**
   * RDMA transport set-up (src/transport/rdma/rdma-setup.ts), link control on stream 0 over the
   * TCP side channel: a queue pair's endpoint and flow-control facts, then "ready".
   */
  RDMA_ENDPOINT: 0x30,
  RDMA_READY: 0x31,
  /** First kind free for tests and benchmarks. */
  TEST_BASE: 0xff00,
} as const;

export type MessageKind = (typeof MessageKind)[keyof typeof MessageKind];
export const MAX_MESSAGE_KIND = 0xffff;
