import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Herald } from '../herald.ts';
import type { CompressionOption } from './compression.ts';
import { nodeHandler } from './node.ts';

export interface HeraldFastifyOptions {
  readonly herald: Herald;
  /**
   * Compress streams for clients that accept it (see `compression` of `createHerald`, which
   * applies when this is not given).
   */
  readonly compression?: CompressionOption;
}

/**
 * A Fastify plugin: `fastify.register(heraldFastify, { herald, prefix: '/realtime' })`.
 *
 * Herald answers its own routes on the raw request and response (`reply.hijack()`): streams
 * outlive Fastify's reply lifecycle, and bodies are read and limited by Herald so every error is
 * the same problem+json as on any other server. The client's address, for per-IP limits, is the
 * socket's peer and Herald's own `trustProxy` (not Fastify's, which Herald's routes never see).
 */
export const heraldFastify: FastifyPluginAsync<HeraldFastifyOptions> = async (
  fastify,
  { herald, compression },
) => {
  const handler = nodeHandler(herald, {
    basePath: fastify.prefix,
    ...(compression === undefined ? {} : { compression }),
  });
  // Scoped to this plugin: leave the body unread for Herald.
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null));
  const route = (request: FastifyRequest, reply: FastifyReply) => {
    // A hijacked reply never sends what hooks put on it (@fastify/cors sets its headers in
    // onRequest): hand them to the raw response, under whatever Herald writes itself.
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      if (value !== undefined && name !== 'content-length') reply.raw.setHeader(name, value);
    }
    reply.hijack();
    handler(request.raw, reply.raw);
  };
  fastify.all('/', route);
  fastify.all('/*', route);
  // `fastify.close()` waits for every response in flight, and an event stream never ends by
  // itself: end this plugin's streams (with a retry hint) first, so the close can finish. The hub
  // belongs to the caller and keeps running.
  fastify.addHook('preClose', (done) => {
    handler.closeStreams();
    done();
  });
};
