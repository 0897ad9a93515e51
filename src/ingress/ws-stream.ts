// WebSocket streaming inference at /v2/models/{m}/infer/stream: each message is one KServe v2
// JSON inference request; each answer is one message, the inference response or an RFC 7807
// problem, carrying the request's `id` (the client's, or the sluice request id when the client
// gave none) so answers can be matched when they complete out of order.
import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import { InferenceError, InferenceErrorCode, toInferenceError } from '../kserve/inference-error.ts';
import { buildInferRequest, formatRestInferResponse, parseJson } from '../kserve/rest-codec.ts';
import type { Logger } from '../telemetry/logger.ts';
import { resolveRequestId } from '../telemetry/request-id.ts';
import { CallMethod, type InferenceGateway } from './inference-gateway.ts';
import { PROBLEM_CONTENT_TYPE, problemOf, statusLine } from './problem.ts';
import { newRequestContext, type RequestContext, type RequestHeaders } from './request-context.ts';
import { requestHeaders } from './uws-headers.ts';

export interface WsStreamOptions {
  gateway: InferenceGateway;
  logger: Logger;
  maxMessageBytes: number;
  /** Requests one connection may have in flight; more are refused with 429 problems. */
  maxInflight?: number;
  /**
   * Checked on the upgrade request, before the 101: a problem answers the upgrade instead
   * (credentials missing or ambiguous while authentication is on). Each message is still gated.
   */
  checkUpgrade?: (headers: RequestHeaders) => InferenceError | null;
  /** A stream with no message either way for this long is closed (uWS pings it first; default 120). */
  idleTimeoutSeconds?: number;
}

interface StreamState {
  model: string;
  url: string;
  base: string;
  seq: number;
  timeoutMs: number | undefined;
  headers: RequestHeaders;
  open: Set<RequestContext>;
  closed: boolean;
}

const EMPTY = Buffer.alloc(0);

export function attachWebSocketStream(app: TemplatedApp, opts: WsStreamOptions): void {
  const gw = opts.gateway;
  const maxInflight = opts.maxInflight ?? 256;

  const send = (ws: WebSocket<StreamState>, text: string): void => {
    if (!ws.getUserData().closed) ws.send(text, false);
  };
  const sendProblem = (ws: WebSocket<StreamState>, err: InferenceError, requestId: string, id: string): void => {
    const s = ws.getUserData();
    send(ws, JSON.stringify({ id, ...problemOf(err, s.url, requestId) }));
  };

  app.ws<StreamState>('/v2/models/:model/infer/stream', {
    maxPayloadLength: opts.maxMessageBytes,
    idleTimeout: opts.idleTimeoutSeconds ?? 120,
    maxBackpressure: 64 * 1024 * 1024,
    upgrade: (res, req, context) => {
      const rawModel = req.getParameter(0);
      let model = rawModel;
      try {
        model = decodeURIComponent(rawModel);
      } catch {
        // Keep the raw segment.
      }
      const t = req.getHeader('x-request-timeout-ms');
      const state: StreamState = {
        model,
        url: req.getUrl(),
        base: resolveRequestId(req.getHeader('x-request-id'), req.getHeader('traceparent')).slice(0, 100),
        seq: 0,
        timeoutMs: /^\d{1,10}$/.test(t) ? Number(t) : undefined,
        headers: {},
        open: new Set(),
        closed: false,
      };
      if (gw.wantsHeaders || opts.checkUpgrade !== undefined) state.headers = requestHeaders(req);
      const problem = opts.checkUpgrade?.(state.headers);
      if (problem !== null && problem !== undefined) {
        const requestId = state.base;
        res.cork(() => {
          res.writeStatus(statusLine(problem.httpStatus)).writeHeader('content-type', PROBLEM_CONTENT_TYPE).writeHeader('x-request-id', requestId);
          if (problem.httpStatus === 401) res.writeHeader('www-authenticate', 'Bearer');
          res.end(JSON.stringify(problemOf(problem, state.url, requestId)));
        });
        gw.refused({ requestId, protocol: 'ws', method: 'ModelInfer', model, headers: state.headers, requestBytes: 0 }, problem);
        return;
      }
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      // The status first, so the request id can go among the 101's headers (uWS writes the
      // status only if none was written).
      res.cork(() => {
        res.writeStatus('101 Switching Protocols').writeHeader('x-request-id', state.base);
        res.upgrade(state, key, protocol, extensions, context);
      });
    },
    message: (ws, message) => {
      const s = ws.getUserData();
      const requestId = `${s.base}:${++s.seq}`;
      // The message buffer is valid only during this callback: JSON.parse reads it now.
      let doc: unknown;
      let clientId = '';
      let proto: Buffer;
      try {
        doc = parseJson(Buffer.from(message), 'message');
        const maybeId = (doc as { id?: unknown } | null)?.id;
        if (typeof maybeId === 'string') clientId = maybeId;
        if (s.open.size >= maxInflight) {
          throw new InferenceError(InferenceErrorCode.TOO_LARGE, `more than ${maxInflight} requests in flight on this stream`, { grpcStatus: 8, httpStatus: 429 });
        }
        proto = buildInferRequest(doc, EMPTY, s.model, '').proto;
      } catch (err) {
        const e = toInferenceError(err);
        sendProblem(ws, e, requestId, clientId !== '' ? clientId : requestId);
        gw.refused({ requestId, protocol: 'ws', method: 'ModelInfer', model: s.model, headers: s.headers, requestBytes: message.byteLength }, e);
        return;
      }
      const id = clientId !== '' ? clientId : requestId;
      const ctx = newRequestContext({
        requestId,
        protocol: 'ws',
        method: 'ModelInfer',
        model: s.model,
        version: '',
        deadline: gw.deadlineFor(s.timeoutMs),
        ...(s.timeoutMs !== undefined ? { timeoutMs: s.timeoutMs } : {}),
        headers: s.headers,
        requestBytes: message.byteLength,
      });
      s.open.add(ctx);
      gw.forward(ctx, CallMethod.ModelInfer, proto).then(
        (res) => {
          s.open.delete(ctx);
          let text: string;
          try {
            text = formatRestInferResponse(res, { all: false, byName: new Map() }, id).json;
          } catch (err) {
            const e = toInferenceError(err);
            sendProblem(ws, e, requestId, id);
            gw.finish(ctx, e, 0);
            return;
          }
          send(ws, text);
          gw.finish(ctx, undefined, text.length);
        },
        (err: unknown) => {
          s.open.delete(ctx);
          const e = toInferenceError(err);
          sendProblem(ws, e, requestId, id);
          gw.finish(ctx, e, 0);
        },
      );
    },
    close: (ws) => {
      const s = ws.getUserData();
      s.closed = true;
      for (const ctx of s.open) ctx.cancel?.();
      s.open.clear();
    },
  });
}
