/**
 * `node --import tsx bench/otlp-sink.ts <port>`: the collector end of `npm run bench -- --tracing`.
 * It accepts OTLP/HTTP JSON exports on `POST /v1/traces` as a collector would (200, `{}`), counts
 * the spans, and keeps nothing else, so the gateway's cost of exporting is measured without a
 * collector's own work on the same cores. `GET /stats` answers the counts so far.
 */
import { createServer } from 'node:http';
import { gunzipSync } from 'node:zlib';

/** What the sink received; `GET /stats` answers it as JSON. */
export interface SinkStats {
  exports: number;
  spans: number;
  bytes: number;
  /** Exports that were not OTLP JSON (they got 400 or 415). */
  refused: number;
}

interface ExportTraceServiceRequest {
  resourceSpans?: { scopeSpans?: { spans?: unknown[] }[] }[];
}

function countSpans(request: ExportTraceServiceRequest): number {
  let n = 0;
  for (const rs of request.resourceSpans ?? []) {
    for (const ss of rs.scopeSpans ?? []) n += ss.spans?.length ?? 0;
  }
  return n;
}

const port = Number(process.argv[2] ?? 19095);
const stats: SinkStats = { exports: 0, spans: 0, bytes: 0, refused: 0 };

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
    return;
  }
  if (req.method !== 'POST' || req.url !== '/v1/traces') {
    res.writeHead(404).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    stats.bytes += raw.length;
    if (req.headers['content-type']?.split(';')[0]?.trim() !== 'application/json') {
      stats.refused++;
      res.writeHead(415).end();
      return;
    }
    try {
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      stats.spans += countSpans(JSON.parse(body.toString('utf8')) as ExportTraceServiceRequest);
      stats.exports++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    } catch {
      stats.refused++;
      res.writeHead(400).end();
    }
  });
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`otlp-sink listening on http://127.0.0.1:${port}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
});
