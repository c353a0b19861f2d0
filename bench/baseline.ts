/**
 * Baseline B: what "any proxy" costs. A bare node:http server that takes the same JSON body,
 * builds the methodcall XML with a template, forwards it through an undici keep-alive pool and
 * answers a small JSON result: no validation, no logging, no policies.
 * Usage: node --import tsx bench/baseline.ts <upstream task URL> <port>
 */
import { createServer } from 'node:http';
import { Pool } from 'undici';

const upstream = new URL(process.argv[2] ?? 'http://127.0.0.1:18081/api/v2/task');
const port = Number(process.argv[3] ?? 18090);
const pool = new Pool(upstream.origin, { connections: 64 });

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const { taskId } = JSON.parse(Buffer.concat(chunks).toString()) as { taskId: string };
    const body = `<?xml version="1.0" encoding="UTF-8"?><methodcall><name>cancel_task</name><params><task_id>${taskId}</task_id></params></methodcall>`;
    pool
      .request({
        method: 'POST',
        path: upstream.pathname,
        headers: { 'content-type': 'application/xml' },
        body,
      })
      .then(async (r) => {
        const text = await r.body.text();
        const ok = text.includes('<params');
        res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok, outcome: ok ? 'canceled' : 'not_found', taskId }));
      })
      .catch(() => {
        res.writeHead(503).end();
      });
  });
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port })}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  void pool.close().then(() => process.exit(0));
});
