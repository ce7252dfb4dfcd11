import type { JwtVerifier } from '../auth/jwt.ts';
import {
  ANONYMOUS,
  type Authenticator,
  bearerToken,
  readCookie,
  verifiedPrincipal,
} from '../auth/token-authenticator.ts';
import { HeraldError } from '../core/errors.ts';
import type { Principal } from '../core/principal.ts';
import { Cors } from '../http/cors.ts';
import type { Limits } from '../http/limits.ts';
import type { HttpRequest } from '../http/request.ts';

/** Who is calling the Mercure endpoints, and the `mercure.payload` their token carries. */
export interface MercureCaller {
  readonly principal: Principal;
  readonly payload?: unknown;
}

export type MercureRole = 'publish' | 'subscribe';

export interface MercureAuthOptions {
  /** Verifies publisher tokens; undefined: `fallback` decides. */
  readonly publisher: JwtVerifier | undefined;
  /** Verifies subscriber tokens; undefined: `fallback` decides. */
  readonly subscriber: JwtVerifier | undefined;
  /** The hub's own authentication, for a role without a Mercure key (open mode: everyone is admin). */
  readonly fallback: Authenticator;
  /** Requests without a token may subscribe, to public updates only. */
  readonly anonymous: boolean;
  readonly cookieName: string;
  /** Origins allowed to publish with a cookie; `*` allows any. */
  readonly publishOrigins: readonly string[];
  /** Charged for a publish whose token is refused here (the fallback charges its own). */
  readonly limits?: Limits;
}

const CHALLENGE = 'Bearer realm="mercure"';
/** The claim under its namespaced name, which the reference hub also accepts. */
const NAMESPACED_CLAIM = 'https://mercure.rocks/';

/**
 * Mercure's token rules (spec §Authorization): the `Authorization` header wins, then the
 * `authorization` query parameter, then the cookie (`mercureAuthorization` by default). A token
 * that fails verification is refused even where anonymous subscribers are allowed: its holder
 * expects its rights, and silently serving it public updates only would hide the fault.
 */
export class MercureAuth {
  private readonly options: MercureAuthOptions;
  private readonly publishOrigins: Cors | undefined;

  constructor(options: MercureAuthOptions) {
    this.options = options;
    const origins = options.publishOrigins;
    this.publishOrigins = origins.includes('*') ? undefined : new Cors({ origins });
  }

  async authenticate(request: HttpRequest, role: MercureRole): Promise<MercureCaller> {
    const verifier = role === 'publish' ? this.options.publisher : this.options.subscriber;
    if (verifier === undefined) return { principal: await this.options.fallback(request, role) };
    try {
      return await this.verify(request, role, verifier);
    } catch (error) {
      // Publishes are exempt from the per-IP request rate only while their credential holds.
      if (role === 'publish') this.options.limits?.chargeRefusedCredential(request, error);
      throw error;
    }
  }

  private async verify(
    request: HttpRequest,
    role: MercureRole,
    verifier: JwtVerifier,
  ): Promise<MercureCaller> {
    const found = this.findToken(request, role);
    if (found === undefined) {
      if (role === 'subscribe' && this.options.anonymous) return { principal: ANONYMOUS };
      throw new HeraldError(
        401,
        'token-required',
        `a token is required to ${role}: send "Authorization: Bearer <jwt>", a ${this.options.cookieName} ` +
          'cookie, or ?authorization=<jwt>',
        { headers: { 'www-authenticate': CHALLENGE } },
      );
    }
    const { principal, claims } = await verifiedPrincipal(
      verifier,
      found.token,
      found.via,
      CHALLENGE,
      role,
      withMercureClaim,
    );
    const payload = (claims.mercure as { payload?: unknown } | undefined)?.payload;
    return payload === undefined ? { principal } : { principal, payload };
  }

  private findToken(
    request: HttpRequest,
    role: MercureRole,
  ): { token: string; via: Principal['via'] } | undefined {
    const authorization = request.header('authorization');
    if (authorization !== undefined) return { token: bearerToken(authorization, CHALLENGE), via: 'header' };
    const query = request.query.get('authorization');
    if (query !== null && query !== '') return { token: query, via: 'query' };
    const cookie = readCookie(request.header('cookie'), this.options.cookieName);
    if (cookie === undefined) return undefined;
    // A cookie rides along with any request the browser makes: only trusted pages may publish with it.
    if (role === 'publish') this.checkPublishOrigin(request);
    return { token: cookie, via: 'cookie' };
  }

  private checkPublishOrigin(request: HttpRequest): void {
    if (this.publishOrigins === undefined) return;
    this.publishOrigins.checkCookieOrigin(request.header('origin') ?? originOf(request.header('referer')));
  }
}

/** `https://mercure.rocks/` is the claim's namespaced name: read it as `mercure` when that is absent. */
function withMercureClaim(claims: Record<string, unknown>): Record<string, unknown> {
  if (claims.mercure !== undefined || claims[NAMESPACED_CLAIM] === undefined) return claims;
  return { ...claims, mercure: claims[NAMESPACED_CLAIM] };
}

/** Browsers that send no Origin on a same-origin POST still send a Referer; its origin stands in. */
function originOf(referer: string | undefined): string | undefined {
  if (referer === undefined) return undefined;
  try {
    return new URL(referer).origin;
  } catch {
    return undefined;
  }
}
