import type { StreamLifecycle } from '../core/hub.ts';
import type { HeraldLogger } from './logger.ts';

/**
 * One log line when a stream opens and one when it closes: which connection, which request
 * opened it, its tenant and how many topic selectors; on close why, how long it lived and how
 * many bytes it was sent. Topic names are not logged: they may name people (`users/42`).
 */
export function connectionLog(logger: HeraldLogger): StreamLifecycle {
  return {
    opened(subscriber) {
      logger.info(
        {
          event: 'connection.open',
          connectionId: subscriber.id,
          requestId: subscriber.requestId,
          tenant: subscriber.tenant,
          topics: subscriber.selectors.length,
        },
        'stream opened',
      );
    },
    closed(subscriber, reason) {
      logger.info(
        {
          event: 'connection.close',
          connectionId: subscriber.id,
          requestId: subscriber.requestId,
          tenant: subscriber.tenant,
          topics: subscriber.selectors.length,
          reason,
          durationMs: Date.now() - subscriber.openedAt,
          bytes: subscriber.bytesWritten,
        },
        'stream closed',
      );
    },
  };
}
