// A small KServe v2 gRPC client for tests: decoded messages in and out, x-request-id trailers
// captured, every call with a deadline.
import * as grpc from '@grpc/grpc-js';
import { decodedServiceDefinition } from '../../src/kserve/grpc-service.ts';
import type { ModelInferResponseMsg } from '../../src/kserve/proto.ts';

export interface CallResult<T> {
  response: T;
  requestId: string | undefined;
  /** Trailing metadata (string values). */
  trailers?: Record<string, string>;
}

export interface CallFailure {
  code: number;
  details: string;
  requestId: string | undefined;
}

const Ctor = grpc.makeGenericClientConstructor(decodedServiceDefinition(), 'GRPCInferenceService');

type Unary = (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: object) => void) => grpc.ClientUnaryCall;

export class KserveClient {
  readonly raw: grpc.Client;

  constructor(address: string, maxMessageBytes = 128 * 1024 * 1024, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure()) {
    this.raw = new Ctor(address, credentials, {
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc.max_send_message_length': maxMessageBytes,
    });
  }

  /** Resolves with the response, or rejects with a CallFailure. */
  call<T>(method: string, req: object, opts: { timeoutMs?: number; requestId?: string; metadata?: Record<string, string> } = {}): Promise<CallResult<T>> {
    const md = new grpc.Metadata();
    if (opts.requestId !== undefined) md.set('x-request-id', opts.requestId);
    for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
    return new Promise((resolve, reject) => {
      // The callback runs before the 'status' event that carries the trailers: settle on both.
      let outcome: { err: grpc.ServiceError | null; res: object } | undefined;
      let status: grpc.StatusObject | undefined;
      const settle = (): void => {
        if (outcome === undefined || status === undefined) return;
        const requestId = status.metadata.get('x-request-id')[0] as string | undefined;
        if (outcome.err) reject({ code: outcome.err.code, details: outcome.err.details, requestId } satisfies CallFailure);
        else {
          const trailers: Record<string, string> = {};
          for (const [k, v] of Object.entries(status.metadata.getMap())) if (typeof v === 'string') trailers[k] = v;
          resolve({ response: outcome.res as T, requestId, trailers });
        }
      };
      const fn = (this.raw as unknown as Record<string, Unary>)[method]!.bind(this.raw);
      const call = fn(req, md, { deadline: Date.now() + (opts.timeoutMs ?? 10_000) }, (err, res) => {
        outcome = { err, res };
        settle();
      });
      call.on('status', (s: grpc.StatusObject) => {
        status = s;
        settle();
      });
    });
  }

  infer(req: object, opts?: { timeoutMs?: number; requestId?: string; metadata?: Record<string, string> }): Promise<CallResult<ModelInferResponseMsg>> {
    return this.call<ModelInferResponseMsg>('ModelInfer', req, opts);
  }

  /** Sends all requests on one ModelStreamInfer stream and collects one answer per request. */
  stream(reqs: object[], timeoutMs = 10_000, metadata: Record<string, string> = {}): Promise<{ errorMessage: string; inferResponse: ModelInferResponseMsg | null }[]> {
    return new Promise((resolve, reject) => {
      const out: { errorMessage: string; inferResponse: ModelInferResponseMsg | null }[] = [];
      const fn = (this.raw as unknown as Record<string, (md: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientDuplexStream<object, object>>)
        .ModelStreamInfer!.bind(this.raw);
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(metadata)) md.set(k, v);
      const call = fn(md, { deadline: Date.now() + timeoutMs });
      call.on('data', (m: { errorMessage: string; inferResponse: ModelInferResponseMsg | null }) => out.push(m));
      call.on('error', reject);
      call.on('end', () => resolve(out));
      for (const r of reqs) call.write(r);
      call.end();
    });
  }

  close(): void {
    this.raw.close();
  }
}

/**
 * Repeats `call` until it succeeds (at most `tries` times, 100 ms apart): an ingress's links to
 * its peers come up in the background, so the first calls may find none yet.
 */
export async function firstAnswered<T>(call: () => Promise<T>, tries = 100): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await call();
    } catch (err) {
      if (i >= tries) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
