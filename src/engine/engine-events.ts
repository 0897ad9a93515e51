// Event types of the engine's batched event channel (native/engine/event_channel.h EventType).
export const EngineEventType = {
  LOG: 1,
  LINK_OPENED: 2,
  LINK_CLOSED: 3,
  HANDSHAKE_FAILED: 4,
  MESSAGE: 5,
  LISTENING: 6,
  DIAL_FAILED: 7,
  LISTEN_FAILED: 8,
  DRAIN: 9,
  POLICY_DENIED: 10,
  REQUEST_DONE: 11,
  FRONT_CALL_DONE: 12,
  GATE_DECISION: 13,
  CONNECTION_REFUSED: 14,
  TLS_AUDIT: 15,
  /** A sampled call's span record (native/engine/trace_context.h SpanRecord; src/engine/engine-spans.ts). */
  SPAN: 16,
  TENSOR_TAP: 17,
  LINK_STATS: 18,
  /** A model-server call of the egress ended (the access log on; src/engine/engine-egress-access.ts). */
  EGRESS_CALL_DONE: 19,
} as const;

/** How a call sent on the engine's links ended (FRONT_CALL_DONE's `b`; native/engine/front_calls.h FrontOutcome). */
export const FrontOutcome = { REPLY: 0, NO_LINK: 1, LINK_CLOSED: 2, DEADLINE: 3, CANCELLED: 4, SEND_FAILED: 5 } as const;
export type FrontOutcome = (typeof FrontOutcome)[keyof typeof FrontOutcome];

/** GATE_DECISION's `c`: credential kind (bits 0-1), flags, and the gRPC status from bit 8. */
export const GateDecisionBits = { CREDENTIAL_MASK: 3, ALLOWED: 4, THROTTLED: 8, STREAMING: 16, STATUS_SHIFT: 8 } as const;

/** pino-style levels the engine's log records carry. */
export const EngineLogLevel = { DEBUG: 20, INFO: 30, WARN: 40, ERROR: 50 } as const;

/** Who ended a link (LINK_CLOSED's `b`), as LinkCloseInfo.by names it. */
export const CLOSED_BY = ['local', 'peer', 'error'] as const;
