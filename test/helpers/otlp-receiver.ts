import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** One span as an OTLP/HTTP collector received it, with its resource's attributes. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Absent for a root span. */
  parentSpanId?: string;
  name: string;
  /** OTLP's SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, unknown>;
  status: { code?: number; message?: string };
  /** The `service.name` of the span's resource. */
  serviceName: string | undefined;
  resource: Record<string, unknown>;
}

/** One POST to `/v1/traces`, as it arrived. */
export interface ReceivedExport {
  contentType: string | undefined;
  contentEncoding: string | undefined;
  headers: IncomingMessage['headers'];
}

export interface OtlpReceiver {
  /** Base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends `/v1/traces`). */
  url: string;
  /** The full traces URL, for `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`. */
  tracesUrl: string;
  spans: ReceivedSpan[];
  exports: ReceivedExport[];
  /** Each export's JSON document as it arrived (decompressed): for searching everything sent. */
  bodies: string[];
  /** Resolves with every span received so far once at least `count` have arrived. */
  waitForSpans(count: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

/** OTLP/JSON's AnyValue (opentelemetry-proto's common.proto in its JSON mapping). */
interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  bytesValue?: string;
  arrayValue?: { values?: AnyValue[] };
  kvlistValue?: { values?: KeyValue[] };
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  attributes?: KeyValue[];
  status?: { code?: number; message?: string };
}
interface ExportTraceServiceRequest {
  resourceSpans?: {
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: { spans?: JsonSpan[] }[];
  }[];
}

function decodeValue(value: AnyValue | undefined): unknown {
  if (value === undefined) return undefined;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  // int64 may arrive as a JSON string, as the JSON mapping of protobuf allows.
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.bytesValue !== undefined) return Buffer.from(value.bytesValue, 'base64');
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(decodeValue);
  if (value.kvlistValue !== undefined) return decodeAttributes(value.kvlistValue.values);
  return undefined;
}

function decodeAttributes(list: KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, decodeValue(kv.value)]));
}

function decode(request: ExportTraceServiceRequest): ReceivedSpan[] {
  return (request.resourceSpans ?? []).flatMap((rs) => {
    const resource = decodeAttributes(rs.resource?.attributes);
    const serviceName = resource['service.name'];
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((span) => ({
        traceId: span.traceId,
        spanId: span.spanId,
        ...(span.parentSpanId !== undefined && span.parentSpanId !== ''
          ? { parentSpanId: span.parentSpanId }
          : {}),
        name: span.name,
        kind: span.kind ?? 0,
        attributes: decodeAttributes(span.attributes),
        status: span.status ?? {},
        serviceName: typeof serviceName === 'string' ? serviceName : undefined,
        resource,
      })),
    );
  });
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * A real OTLP/HTTP trace receiver on a loopback port: it accepts `POST /v1/traces` in the JSON
 * encoding (gzip or not), as @opentelemetry/exporter-trace-otlp-http sends it, decodes the spans,
 * and answers as a collector does. Protobuf bodies get 415, so a change of encoding fails loudly.
 */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const exports: ReceivedExport[] = [];
  const bodies: string[] = [];
  const waiters: { count: number; resolve: (s: ReceivedSpan[]) => void }[] = [];
  const notify = (): void => {
    for (const waiter of [...waiters]) {
      if (spans.length >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve([...spans]);
      }
    }
  };

  const server = createServer((req, res) => {
    void (async () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const contentType = req.headers['content-type'];
      const contentEncoding = req.headers['content-encoding'];
      exports.push({ contentType, contentEncoding, headers: req.headers });
      const raw = await readAll(req);
      if (contentType?.split(';')[0]?.trim() !== 'application/json') {
        res.writeHead(415, { 'content-type': 'text/plain' }).end('JSON only');
        return;
      }
      try {
        const text = (contentEncoding === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
        spans.push(...decode(JSON.parse(text) as ExportTraceServiceRequest));
        bodies.push(text);
      } catch (error) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(String(error));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      notify();
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    tracesUrl: `${url}/v1/traces`,
    spans,
    exports,
    bodies,
    waitForSpans: (count) =>
      new Promise((resolve) => {
        waiters.push({ count, resolve });
        notify();
      }),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => {
          if (error) reject(error);
          else resolve();
        });
      }),
  };
}
