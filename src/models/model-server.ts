// The reference model server: a KServe v2 gRPC server (inference.GRPCInferenceService) serving
// the reference models. It is the upstream of the embedded demo and of the tests and benchmarks.
// It answers typed requests in typed form and raw requests in raw form, echoes x-request-id in
// trailers, and honours the `delay_ms` request parameter (a model that is slow on purpose, for
// deadline tests and demos; capped by `maxDelayMs`).
import * as grpc from '@grpc/grpc-js';
import { decodedServiceDefinition } from '../kserve/grpc-service.ts';
import { InferenceError, InferenceErrorCode, toInferenceError } from '../kserve/inference-error.ts';
import type {
  ModelInferRequestMsg,
  NameVersionMsg,
  ParameterMap,
} from '../kserve/proto.ts';
import { int64ToNumber, messageFromObject } from '../kserve/proto.ts';
import type { Datatype } from '../kserve/datatypes.ts';
import type { Logger } from '../telemetry/logger.ts';
import { isValidRequestId } from '../telemetry/request-id.ts';
import { createDenseModel, type DenseOptions } from './dense-model.ts';
import { createIdentityModel } from './identity-model.ts';
import { modelConfigOf } from './model-config.ts';
import { ModelStatisticsCounter, type RequestTiming } from './model-statistics.ts';
import { requestTensors, responseMessage, type ResponseMessage } from './infer-io.ts';
import type { ReferenceModel } from './reference-model.ts';
import { createSimpleModel } from './simple-model.ts';
import { shutdownGrpcServer } from '../grpc/server-shutdown.ts';

export type ReferenceModelName = 'simple' | 'identity' | 'dense';

/** What `identity` declares, and the strict per-datatype variants (identity_fp32, ...) to serve. */
export interface IdentityOptions {
  datatype: Datatype;
  variants: readonly Datatype[];
}

export const DEFAULT_IDENTITY: IdentityOptions = { datatype: 'FP32', variants: [] };

export interface ModelServerOptions {
  host: string;
  port: number;
  models: readonly ReferenceModelName[];
  dense: DenseOptions;
  identity?: IdentityOptions;
  maxMessageBytes: number;
  maxDelayMs: number;
  logger: Logger;
}

export const SERVER_NAME = 'sluice-reference-models';
export const SERVER_VERSION = '0.1.0';

export function createReferenceModels(names: readonly ReferenceModelName[], dense: DenseOptions, identity: IdentityOptions = DEFAULT_IDENTITY): Map<string, ReferenceModel> {
  const out = new Map<string, ReferenceModel>();
  for (const n of names) {
    if (n === 'identity') {
      out.set('identity', createIdentityModel(identity.datatype, false));
      for (const dt of identity.variants) {
        const v = createIdentityModel(dt, true);
        out.set(v.name, v);
      }
      continue;
    }
    const m = n === 'simple' ? createSimpleModel() : createDenseModel(dense);
    out.set(m.name, m);
  }
  return out;
}

function batchSizeOf(model: ReferenceModel, req: ModelInferRequestMsg): number {
  const first = req.inputs[0]?.shape[0];
  return model.maxBatchSize > 0 && first !== undefined ? Math.max(1, int64ToNumber(first)) : 1;
}

function requestIdOf(call: { metadata: grpc.Metadata }): string | undefined {
  const v = call.metadata.get('x-request-id')[0];
  return typeof v === 'string' && isValidRequestId(v) ? v : undefined;
}

function trailerFor(requestId: string | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (requestId !== undefined) md.set('x-request-id', requestId);
  return md;
}

function delayOf(params: ParameterMap | undefined, max: number): number {
  const p = params?.delay_ms;
  if (p === undefined) return 0;
  const v = p.parameterChoice === 'int64Param' ? int64ToNumber(p.int64Param!) : p.parameterChoice === 'doubleParam' ? p.doubleParam! : Number.NaN;
  if (!Number.isFinite(v) || v < 0) throw new InferenceError(InferenceErrorCode.BAD_REQUEST, 'parameter delay_ms must be a non-negative number');
  return Math.min(v, max);
}

export class ModelServer {
  readonly models: Map<string, ReferenceModel>;
  private readonly stats = new Map<string, ModelStatisticsCounter>();
  private readonly server: grpc.Server;
  private readonly opts: ModelServerOptions;
  private boundPort = 0;

  constructor(opts: ModelServerOptions) {
    this.opts = opts;
    this.models = createReferenceModels(opts.models, opts.dense, opts.identity);
    for (const name of this.models.keys()) this.stats.set(name, new ModelStatisticsCounter());
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': opts.maxMessageBytes,
      'grpc.max_send_message_length': opts.maxMessageBytes,
      'grpc.enable_channelz': 0,
    });
    this.server.addService(decodedServiceDefinition(), {
      ServerLive: (_call: unknown, cb: grpc.sendUnaryData<object>) => cb(null, { live: true }),
      ServerReady: (_call: unknown, cb: grpc.sendUnaryData<object>) => cb(null, { ready: true }),
      ServerMetadata: (_call: unknown, cb: grpc.sendUnaryData<object>) =>
        cb(null, { name: SERVER_NAME, version: SERVER_VERSION, extensions: [] }),
      ModelReady: (call: grpc.ServerUnaryCall<NameVersionMsg, object>, cb: grpc.sendUnaryData<object>) => {
        const found = this.lookup(call.request.name, call.request.version, false);
        cb(null, { ready: found !== undefined });
      },
      ModelMetadata: (call: grpc.ServerUnaryCall<NameVersionMsg, object>, cb: grpc.sendUnaryData<object>) => {
        const rid = requestIdOf(call);
        try {
          const m = this.lookup(call.request.name, call.request.version, true)!;
          cb(null, { name: m.name, versions: [...m.versions], platform: m.platform, inputs: m.inputs, outputs: m.outputs }, trailerFor(rid));
        } catch (err) {
          cb(this.statusOf(err, rid));
        }
      },
      ModelConfig: (call: grpc.ServerUnaryCall<NameVersionMsg, object>, cb: grpc.sendUnaryData<object>) => {
        const rid = requestIdOf(call);
        try {
          const m = this.lookup(call.request.name, call.request.version, true)!;
          cb(null, messageFromObject('ModelConfigResponse', { config: modelConfigOf(m) }), trailerFor(rid));
        } catch (err) {
          cb(this.statusOf(err, rid));
        }
      },
      ModelStatistics: (call: grpc.ServerUnaryCall<NameVersionMsg, object>, cb: grpc.sendUnaryData<object>) => {
        const rid = requestIdOf(call);
        try {
          // Empty name: every model (Triton's convention).
          const models = call.request.name === '' ? [...this.models.values()] : [this.lookup(call.request.name, call.request.version, true)!];
          const modelStats = models.map((m) => this.stats.get(m.name)!.message(m.name, m.versions[0]!));
          cb(null, messageFromObject('ModelStatisticsResponse', { modelStats }), trailerFor(rid));
        } catch (err) {
          cb(this.statusOf(err, rid));
        }
      },
      RepositoryIndex: (call: grpc.ServerUnaryCall<object, object>, cb: grpc.sendUnaryData<object>) => {
        // Every model here is loaded and ready from start to stop: `ready` filters nothing out.
        const models = [...this.models.values()].flatMap((m) => m.versions.map((version) => ({ name: m.name, version, state: 'READY', reason: '' })));
        cb(null, { models }, trailerFor(requestIdOf(call)));
      },
      ModelInfer: (call: grpc.ServerUnaryCall<ModelInferRequestMsg, object>, cb: grpc.sendUnaryData<object>) => {
        const rid = requestIdOf(call);
        this.infer(call.request, call).then(
          (res) => cb(null, res, trailerFor(rid)),
          (err: unknown) => cb(this.statusOf(err, rid)),
        );
      },
      ModelStreamInfer: (call: grpc.ServerDuplexStream<ModelInferRequestMsg, object>) => {
        call.on('data', (req: ModelInferRequestMsg) => {
          this.infer(req, call).then(
            (res) => call.write({ errorMessage: '', inferResponse: res }),
            (err: unknown) =>
              call.write({ errorMessage: toInferenceError(err).message, inferResponse: { modelName: req.modelName, id: req.id } }),
          );
        });
        call.on('end', () => call.end());
        call.on('error', () => undefined);
      },
    });
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<number> {
    this.boundPort = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(`${this.opts.host}:${this.opts.port}`, grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      );
    });
    this.opts.logger.info({ listener: 'models', address: `${this.opts.host}:${this.boundPort}`, models: [...this.models.keys()] }, 'listening');
    return this.boundPort;
  }

  async stop(graceMs = 2000): Promise<void> {
    await shutdownGrpcServer(this.server, graceMs);
  }

  private lookup(name: string, version: string, required: boolean): ReferenceModel | undefined {
    const m = this.models.get(name);
    if (m === undefined || (version !== '' && !m.versions.includes(version))) {
      if (!required) return undefined;
      throw new InferenceError(
        InferenceErrorCode.MODEL_NOT_FOUND,
        m === undefined ? `unknown model '${name}'` : `model '${name}' has no version '${version}'`,
      );
    }
    return m;
  }

  private async infer(req: ModelInferRequestMsg, call: { once(ev: 'cancelled', f: () => void): unknown; off(ev: 'cancelled', f: () => void): unknown }): Promise<ResponseMessage> {
    const arrived = process.hrtime.bigint();
    const model = this.lookup(req.modelName, req.modelVersion, true)!;
    try {
      return await this.run(model, req, call, arrived);
    } catch (err) {
      this.stats.get(model.name)!.failed(arrived);
      throw err;
    }
  }

  private async run(model: ReferenceModel, req: ModelInferRequestMsg, call: { once(ev: 'cancelled', f: () => void): unknown; off(ev: 'cancelled', f: () => void): unknown }, arrived: bigint): Promise<ResponseMessage> {
    const delay = delayOf(req.parameters, this.opts.maxDelayMs);
    if (delay > 0) {
      await new Promise<void>((resolve, reject) => {
        const onCancel = (): void => {
          clearTimeout(t);
          reject(new InferenceError(InferenceErrorCode.CANCELLED, 'the caller cancelled the request'));
        };
        const t = setTimeout(() => {
          call.off('cancelled', onCancel);
          resolve();
        }, delay);
        call.once('cancelled', onCancel);
      });
    }
    const started = process.hrtime.bigint();
    const { tensors, raw } = requestTensors(req);
    const inputDone = process.hrtime.bigint();
    const outputs = model.infer(tensors);
    const inferDone = process.hrtime.bigint();
    const res = responseMessage(model.name, model.versions[0]!, req, outputs, raw);
    const timing: RequestTiming = { arrived, started, inputDone, inferDone, outputDone: process.hrtime.bigint(), batchSize: batchSizeOf(model, req) };
    this.stats.get(model.name)!.succeeded(timing);
    return res;
  }

  private statusOf(err: unknown, requestId: string | undefined): grpc.ServerErrorResponse {
    const e = toInferenceError(err);
    if (e.code === InferenceErrorCode.INTERNAL) this.opts.logger.error({ err, request_id: requestId }, 'model server error');
    return Object.assign(new Error(e.message), { code: e.grpcStatus, details: e.message, metadata: trailerFor(requestId) });
  }
}
