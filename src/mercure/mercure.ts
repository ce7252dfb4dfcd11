import { createJwtVerifier, type JwtOptions, type JwtVerifier, type KeyUse } from '../auth/jwt.ts';
import type { Authenticator } from '../auth/token-authenticator.ts';
import type { Hub } from '../core/hub.ts';
import type { Limits } from '../http/limits.ts';
import type { RouteEntry } from '../http/route-table.ts';
import { MercureAuth } from './auth.ts';
import { MERCURE_PATH, SUBSCRIPTIONS_PATH } from './protocol.ts';
import { publish } from './publish.ts';
import { subscribe } from './subscribe.ts';
import { ActiveSubscriptions, subscriptionsApi } from './subscriptions.ts';

/**
 * Mercure over the same hub, broker and auth (the draft the reference hub v0.24 implements). Each
 * setting mirrors one of the reference hub's (README, "Coming from Mercure").
 */
export interface MercureOptions {
  /**
   * Keys of publisher tokens (the reference hub's `publisher_jwt`); default: the hub's `auth.jwt`.
   * Their tokens may publish only: never subscribe nor act as admin, whatever they claim.
   */
  readonly publisherJwt?: JwtOptions;
  /**
   * Keys of subscriber tokens (`subscriber_jwt`); default: the hub's `auth.jwt`. Their tokens may
   * subscribe only: never publish nor act as admin, whatever they claim.
   */
  readonly subscriberJwt?: JwtOptions;
  /** Subscribers without a token get public updates (`anonymous`); default: the hub's `auth.anonymous`. */
  readonly anonymous?: boolean;
  /** The cookie a browser sends its token in (`cookie_name`). Default `mercureAuthorization`. */
  readonly cookieName?: string;
  /** Origins allowed to publish with a cookie (`publish_origins`); `*` any. Default: the hub's CORS origins. */
  readonly publishOrigins?: readonly string[];
  /** Active subscriptions: subscription events and the subscriptions API (`subscriptions`). Default false. */
  readonly subscriptions?: boolean;
}

/** What the hub passes down: its own auth settings, which Mercure's default to. */
export interface MercureDefaults {
  readonly verifier: JwtVerifier | undefined;
  readonly authenticate: Authenticator;
  readonly anonymous: boolean;
  readonly corsOrigins: readonly string[];
  /** Where a publish whose credential is refused is charged to its IP. */
  readonly limits?: Limits;
  /** This node's id: its subscription updates name it, so the others can drop them if it dies. */
  readonly nodeId?: string;
}

export class Mercure {
  readonly auth: MercureAuth;
  /** Undefined unless active subscriptions are on. */
  readonly subscriptions: ActiveSubscriptions | undefined;

  constructor(hub: Hub, options: MercureOptions, defaults: MercureDefaults) {
    // Each Mercure key verifies its role only: a subscriber key's token never publishes nor
    // administers, a publisher key's never administers, whatever its claims (src/auth/claims.ts).
    const verifier = (jwt: JwtOptions | undefined, role: KeyUse, name: string) =>
      jwt === undefined ? defaults.verifier : createJwtVerifier({ ...jwt, uses: [role], name });
    this.auth = new MercureAuth({
      publisher: verifier(options.publisherJwt, 'publish', "Mercure's publisher key"),
      subscriber: verifier(options.subscriberJwt, 'subscribe', "Mercure's subscriber key"),
      fallback: defaults.authenticate,
      anonymous: options.anonymous ?? defaults.anonymous,
      cookieName: options.cookieName ?? 'mercureAuthorization',
      publishOrigins: options.publishOrigins ?? defaults.corsOrigins.filter((origin) => origin !== '*'),
      ...(defaults.limits === undefined ? {} : { limits: defaults.limits }),
    });
    this.subscriptions =
      options.subscriptions === true ? new ActiveSubscriptions(hub, defaults.nodeId) : undefined;
  }

  /** Mercure's routes, for the hub's route table. */
  routes(): RouteEntry[] {
    const { auth, subscriptions } = this;
    const routes: RouteEntry[] = [
      {
        method: 'GET',
        path: MERCURE_PATH,
        handle: (context, request) => subscribe(auth, subscriptions, context, request),
      },
      { method: 'POST', path: MERCURE_PATH, handle: (context, request) => publish(auth, context, request) },
    ];
    if (subscriptions !== undefined) {
      routes.push({
        method: 'GET',
        path: SUBSCRIPTIONS_PATH,
        below: true,
        handle: (_context, request) => subscriptionsApi(auth, subscriptions, request),
      });
    }
    return routes;
  }
}
