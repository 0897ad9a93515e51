import * as grpc from '@grpc/grpc-js';
import { Http2GrpcServer } from '../src/ingress/http2-grpc-server.ts';
const kind = process.argv[2];
const id = (b: Buffer) => b;
let port: number;
if (kind === 'lean') {
  const lean = new Http2GrpcServer({ maxMessageBytes: 1 << 20 });
  lean.register('/t.T/E', { kind: 'unary', handle: (call, req) => setImmediate(() => call.reply(req, { 'x-request-id': 'x' })) });
  port = await lean.listen('127.0.0.1', 0);
} else {
  const gs = new grpc.Server({ 'grpc.enable_channelz': 0 });
  gs.addService({ E: { path: '/t.T/E', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } } as any, { E: (call: any, cb: any) => setImmediate(() => { const md = new grpc.Metadata(); md.set('x-request-id', 'x'); cb(null, call.request, md); }) });
  port = await new Promise<number>((r) => gs.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (_e, p) => r(p)));
}
console.log(port);
