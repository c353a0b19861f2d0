/**
 * Baseline E: the ceiling of the stack the gateway is built on. Express 5 with `express.json()`,
 * the methodcall XML built by a template, forwarded through an undici keep-alive pool, a small
 * JSON answer: no validation, logging, metrics or policies. The per-response extras the gateway
 * also switches off (ETag hashing, X-Powered-By, query parsing) are off here too, so the
 * difference to the gateway is the gateway's own work.
 * Usage: node --import tsx bench/baseline-express.ts <upstream task URL> <port>
 */
import express from 'express';
import { Pool } from 'undici';

const upstream = new URL(process.argv[2] ?? 'http://127.0.0.1:18081/api/v2/task');
const port = Number(process.argv[3] ?? 18091);
const pool = new Pool(upstream.origin, { connections: 64 });

const app = express();
app.disable('x-powered-by');
app.set('etag', false);
app.set('query parser', false);
app.use(express.json());
app.post('/cancel', (req, res) => {
  const { taskId } = req.body as { taskId: string };
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
      res.status(ok ? 200 : 404).json({ ok, outcome: ok ? 'canceled' : 'not_found', taskId });
    })
    .catch(() => {
      res.sendStatus(503);
    });
});

const server = app.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port })}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  void pool.close().then(() => process.exit(0));
});
