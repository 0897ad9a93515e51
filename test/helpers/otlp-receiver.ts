// A minimal OTLP/HTTP (JSON) traces receiver on loopback: stores every span with the
// service.instance.id of the node that sent it, and the content types it was sent with.
import { createServer } from 'node:http';

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano?: string;
  endTimeUnixNano?: string;
  status?: { code?: number; message?: string };
  attributes?: { key: string; value: Record<string, unknown> }[];
}
interface OtlpExport {
  resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}

export interface OtlpReceiver {
  url: string;
  spans: (OtlpSpan & { service: string })[];
  contentTypes: Set<string>;
  close(): void;
}

export async function otlpReceiver(): Promise<OtlpReceiver> {
  const spans: (OtlpSpan & { service: string })[] = [];
  const contentTypes = new Set<string>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      contentTypes.add(String(req.headers['content-type']));
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport;
      for (const rs of body.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.instance.id')?.value.stringValue ?? '?';
        for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, service });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/v1/traces`, spans, contentTypes, close: () => server.close() };
}

/** A span attribute's value (string, int or double), or undefined. */
export function attr(s: OtlpSpan, key: string): unknown {
  const v = s.attributes?.find((a) => a.key === key)?.value;
  if (v === undefined) return undefined;
  return v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.doubleValue);
}
