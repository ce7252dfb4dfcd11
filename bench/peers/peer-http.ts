/**
 * The HTTP around a Node benchmark peer, the same for each so that only their SSE part differs:
 * `GET /events?topic=` hands the request to the peer's stream, `POST /publish` with
 * `{ topic, data, event? }` as JSON calls its publish, anything else is 404. Prints
 * `listening on http://127.0.0.1:<port>` once it accepts connections; exits on SIGINT/SIGTERM.
 */
import http from 'node:http';

export interface NodePeer {
  stream(req: http.IncomingMessage, res: http.ServerResponse, topic: string): void | Promise<void>;
  publish(topic: string, data: unknown, event: string | undefined): void;
}

const MAX_BODY = 1024 * 1024;

export function servePeer(peer: NodePeer, port: number): void {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/events') {
      const topic = url.searchParams.get('topic');
      if (topic === null || topic === '') res.writeHead(400).end('topic required\n');
      else
        Promise.resolve(peer.stream(req, res, topic)).catch((error: unknown) => {
          process.stderr.write(`stream failed: ${error instanceof Error ? error.message : error}\n`);
          res.destroy();
        });
    } else if (req.method === 'POST' && url.pathname === '/publish') {
      readPublish(req, res, peer);
    } else {
      res.writeHead(404).end();
    }
  });
  server.listen(port, '127.0.0.1', () => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    process.stdout.write(`listening on http://127.0.0.1:${address.port}\n`);
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0));
}

function readPublish(req: http.IncomingMessage, res: http.ServerResponse, peer: NodePeer): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY) {
      res.writeHead(413).end();
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    let body: { topic?: unknown; data?: unknown; event?: unknown };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid JSON"}');
      return;
    }
    if (typeof body.topic !== 'string' || body.data === undefined) {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"topic and data required"}');
      return;
    }
    peer.publish(body.topic, body.data, typeof body.event === 'string' ? body.event : undefined);
    res.writeHead(202, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
}
