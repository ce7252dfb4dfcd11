import { isIP } from 'node:net';
import { HeraldError } from '../core/errors.ts';
import { OPEN_PRINCIPAL, type Principal } from '../core/principal.ts';
import type { HttpRequest } from '../http/request.ts';
import type { Authenticator } from './token-authenticator.ts';

/**
 * Who a hub without any authentication trusts. Embedded in an app that forgot to configure auth,
 * it must not let the whole network publish, change streams or read the operator's figures: by
 * default only this machine may (as `herald serve` refuses to listen beyond loopback in that mode).
 * Anyone may still subscribe, to the single tenant's events but not as an admin (no `*`, no other
 * tenant). `open: true` is the app saying that its network is its own: then everyone is admin.
 */
export function openModeAuthenticator(openToEveryone: boolean): Authenticator {
  if (openToEveryone) return () => OPEN_PRINCIPAL;
  return (request, action) => {
    if (isLoopbackAddress(request.remoteAddress)) return OPEN_PRINCIPAL;
    if (action === 'subscribe' && request.path !== '/v1/subscriptions') return VISITOR;
    throw loopbackOnly(request);
  };
}

/** A non-local subscriber of an open hub: every event of the tenant `""`, nothing more. */
const VISITOR: Principal = Object.freeze({ ...OPEN_PRINCIPAL, admin: false, publish: [] });

/** 403 for a request an open hub answers only on this machine. */
export function loopbackOnly(request: HttpRequest): HeraldError {
  const from =
    request.remoteAddress === undefined ? 'a client whose address is unknown' : request.remoteAddress;
  return new HeraldError(
    403,
    'loopback-only',
    `this hub has no authentication configured, so ${request.path} answers only requests from this machine, ` +
      `not from ${from}: configure auth (auth.jwt or authenticate), or pass open: true to createHerald if ` +
      'everyone who can reach it may publish and administer it',
  );
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const plain = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(plain) === 4) return plain.startsWith('127.');
  return plain === '::1' || plain === '0:0:0:0:0:0:0:1';
}
