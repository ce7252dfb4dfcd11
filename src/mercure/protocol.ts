/** The names the Mercure protocol reserves, which its routes and its subscriptions registry share. */

/** Where the Mercure protocol lives, as its discovery mechanism names it. */
export const MERCURE_PATH = '/.well-known/mercure';

/** The active subscriptions' updates and their API live below it (spec §Active Subscriptions). */
export const SUBSCRIPTIONS_PATH = '/.well-known/mercure/subscriptions';

/** The reserved `Last-Event-ID`: everything the hub still has, and the answer when nothing precedes. */
export const EARLIEST = 'earliest';
