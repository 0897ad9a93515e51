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
