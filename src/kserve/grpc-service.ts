// grpc-js service definitions of inference.GRPCInferenceService. Two codecs: `decoded`
// (protobufjs messages, for the reference model server and clients that build requests) and
// `passthrough` (Buffers in and out, for the ingress and egress, which forward the serialized
// bytes without decoding tensors).
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { decodeMessage, encodeMessage, type ProtoTypeName } from './proto.ts';

export const SERVICE_NAME = 'inference.GRPCInferenceService';

export interface MethodInfo {
  readonly name: InferenceMethod;
  readonly path: string;
  readonly requestType: ProtoTypeName;
  readonly responseType: ProtoTypeName;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

export type InferenceMethod =
  | 'ServerLive'
  | 'ServerReady'
  | 'ModelReady'
  | 'ServerMetadata'
  | 'ModelMetadata'
  | 'ModelInfer'
  | 'ModelStreamInfer'
  | 'ModelConfig'
  | 'ModelStatistics'
  | 'RepositoryIndex';

function method(
  name: InferenceMethod,
  requestType: ProtoTypeName,
  responseType: ProtoTypeName,
  stream = false,
): MethodInfo {
  return { name, path: `/${SERVICE_NAME}/${name}`, requestType, responseType, requestStream: stream, responseStream: stream };
}

export const METHODS: Readonly<Record<InferenceMethod, MethodInfo>> = {
  ServerLive: method('ServerLive', 'ServerLiveRequest', 'ServerLiveResponse'),
  ServerReady: method('ServerReady', 'ServerReadyRequest', 'ServerReadyResponse'),
  ModelReady: method('ModelReady', 'ModelReadyRequest', 'ModelReadyResponse'),
  ServerMetadata: method('ServerMetadata', 'ServerMetadataRequest', 'ServerMetadataResponse'),
  ModelMetadata: method('ModelMetadata', 'ModelMetadataRequest', 'ModelMetadataResponse'),
  ModelInfer: method('ModelInfer', 'ModelInferRequest', 'ModelInferResponse'),
  ModelStreamInfer: method('ModelStreamInfer', 'ModelInferRequest', 'ModelStreamInferResponse', true),
  ModelConfig: method('ModelConfig', 'ModelConfigRequest', 'ModelConfigResponse'),
  ModelStatistics: method('ModelStatistics', 'ModelStatisticsRequest', 'ModelStatisticsResponse'),
  RepositoryIndex: method('RepositoryIndex', 'RepositoryIndexRequest', 'RepositoryIndexResponse'),
};

const identity = (b: Buffer): Buffer => b;

export function passthroughServiceDefinition(): ServiceDefinition {
  const def: Record<string, MethodDefinition<Buffer, Buffer>> = {};
  for (const m of Object.values(METHODS)) {
    def[m.name] = {
      path: m.path,
      requestStream: m.requestStream,
      responseStream: m.responseStream,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
      originalName: m.name,
    };
  }
  return def as ServiceDefinition;
}

export function decodedServiceDefinition(): ServiceDefinition {
  const def: Record<string, MethodDefinition<object, object>> = {};
  for (const m of Object.values(METHODS)) {
    def[m.name] = {
      path: m.path,
      requestStream: m.requestStream,
      responseStream: m.responseStream,
      requestSerialize: (v: object) => encodeMessage(m.requestType, v),
      requestDeserialize: (b: Buffer) => decodeMessage<object>(m.requestType, b),
      responseSerialize: (v: object) => encodeMessage(m.responseType, v),
      responseDeserialize: (b: Buffer) => decodeMessage<object>(m.responseType, b),
      originalName: m.name,
    };
  }
  return def as ServiceDefinition;
}
