// The sluice package's public API for applications: the training transfer client.
export { connect, SluiceClient } from './training/client.ts';
export type { ClientOptions, PushOptions, PushResult, PushSource, Subscription, TransferStatus } from './training/client.ts';
export type { ReceiveEvent } from './training/receive-events.ts';
export type { Sink, TensorMeta } from './training/tensor-meta.ts';
export { TransferError } from './training/errors.ts';
