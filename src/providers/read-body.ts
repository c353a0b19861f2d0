import type { Dispatcher } from 'undici';

export type BodyRead = { ok: true; text: string } | { ok: false; reason: 'too_large' };

/**
 * Reads an upstream body up to `maxBytes`; past that the socket is dropped rather than drained,
 * so a hostile upstream cannot make the gateway buffer without bound.
 */
export async function readCapped(
  body: Dispatcher.ResponseData['body'],
  headers: Dispatcher.ResponseData['headers'],
  maxBytes: number,
): Promise<BodyRead> {
  const declared = Number(headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    body.destroy();
    return { ok: false, reason: 'too_large' };
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      body.destroy();
      return { ok: false, reason: 'too_large' };
    }
    chunks.push(chunk);
  }
  return {
    ok: true,
    text: Buffer.concat(chunks, size).toString('utf8'),
  };
}
