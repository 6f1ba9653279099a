import { ManifoldError } from "@manifold/contracts";
import type { CatalogProjection } from "@manifold/domain";
import type { Logger } from "@manifold/telemetry";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { oauthOf } from "./delegatedCredentials.js";
import type { PendingFlow, TokenVault } from "./tokenVault.js";
import type { UpstreamAuthorization } from "./upstreamAuthorization.js";

/** The state is 32 random bytes in base64url. */
const STATE = /^[A-Za-z0-9_-]{43}$/;
const FORM_LIMIT = 1_024;

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const random = () => randomBytes(32).toString("base64url");
const sameSecret = (a: string | undefined, b: string | undefined) => a !== undefined && b !== undefined && a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
/** Names that escape nothing: upstream and consumer names are `[a-z0-9-]` already; stripped anyway. */
const plain = (text: string) => text.replace(/[<>&"']/g, "");

const headersOf = (reply: FastifyReply) =>
  reply
    .header("content-type", "text/html; charset=utf-8")
    .header("cache-control", "no-store")
    .header("content-security-policy", "default-src 'none'; frame-ancestors 'none'")
    .header("x-frame-options", "DENY")
    .header("referrer-policy", "no-referrer");

const page = (reply: FastifyReply, status: number, text: string) =>
  headersOf(reply.status(status)).send(`<!doctype html><meta charset="utf-8"><title>Manifold</title><p>${plain(text)}</p>`);

function cookiesOf(request: FastifyRequest): Map<string, string> {
  const jar = new Map<string, string>();
  for (const part of (request.headers.cookie ?? "").slice(0, 8_192).split(";")) {
    const at = part.indexOf("=");
    if (at > 0) jar.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  return jar;
}

/**
 * The browser's side of connecting an account. A connect link binds whatever upstream account
 * completes it to the consumer it was issued to, so it is not a bearer link to the consent:
 *
 * 1. `GET /oauth/connect/<state>` shows who the account will be connected to (upstream and
 *    consumer) and asks for an explicit confirmation; it never redirects, so a link preview, an
 *    embedded request or an authorization server that consents silently binds nothing. It sets a
 *    `SameSite=Strict` cookie that the form repeats (double submit): a form posted from another
 *    site does not carry it.
 * 2. `POST /oauth/connect/<state>` binds the flow, once, to a fresh secret kept in an HttpOnly
 *    cookie of that browser (its hash in the sealed flow), and sends the browser to the upstream's
 *    authorization server.
 * 3. `GET /oauth/callback/<upstream>` completes only in the browser that holds that secret: an
 *    authorization URL forwarded to someone else after confirming comes back without it and binds
 *    nothing. And only for the upstream the address names (`oauthCallbackUrl`).
 *
 * What it cannot tell: whether the person who confirms is the consumer's user (API keys name no
 * person). docs/identity.md says what remains.
 */
/**
 * Where an upstream's authorization server sends the browser back: one address per upstream, each
 * registered at its own server (RFC 9700, 4.4.2). With one address for all, a callback was told
 * apart by its `state` alone, and the code in it was redeemed at the server of that state's flow:
 * an upstream vendor's authorization server sent the user on to another upstream's server with its
 * own flow's state, and that server's code came back to the vendor's token endpoint with the PKCE
 * verifier (an OAuth mix-up; found by an attacker run, `test/e2e/oauthMixUp.e2e.spec.ts`).
 */
export const oauthCallbackUrl = (publicUrl: string, upstream: string) => `${publicUrl}/oauth/callback/${encodeURIComponent(upstream)}`;

export function registerConnectPages(
  app: FastifyInstance,
  deps: { projection: CatalogProjection; vault: TokenVault; authorization: UpstreamAuthorization; publicUrl: string; flowTtlS: number; logger: Logger },
): void {
  const { projection, vault, authorization, publicUrl, logger } = deps;
  const secure = publicUrl.startsWith("https:");
  // Over https the cookies are `__Host-` ones: a browser takes them only from this host itself, so a
  // sibling subdomain (or a plain-HTTP answer forged for this host) cannot plant the binding of a
  // link its owner confirmed, and have a victim's callback bind the victim's account to that owner.
  // Such a cookie must name the path `/`.
  const [prefix, path] = secure ? ["__Host-", "/"] : ["", "/oauth/"];
  /** Per flow, so that two links open in one browser do not overwrite each other's cookies. */
  const cookieId = (state: string) => sha256(state).slice(0, 16);
  const cookie = (name: string, value: string, sameSite: "Strict" | "Lax") =>
    `${name}=${value}; Path=${path}; Max-Age=${deps.flowTtlS}; HttpOnly; SameSite=${sameSite}${secure ? "; Secure" : ""}`;
  const confirmCookie = (state: string) => `${prefix}mfc_${cookieId(state)}`;
  const bindingCookie = (state: string) => `${prefix}mfb_${cookieId(state)}`;
  const cleared = (name: string) => `${name}=; Path=${path}; Max-Age=0${secure ? "; Secure" : ""}`;
  const expired = (reply: FastifyReply) => page(reply, 404, "This link has expired or was already used. Call the tool again for a new one.");
  /**
   * The flow's consumer still exists, as the one it was started for: a link confirmed after its
   * consumer was deleted bound an account to whoever was created under that name next.
   */
  const live = (flow: PendingFlow) => flow.consumerCreated !== undefined && projection.consumer(flow.consumer)?.created === flow.consumerCreated;

  app.get("/oauth/connect/:state", async (request: FastifyRequest<{ Params: { state: string } }>, reply) => {
    const { state } = request.params;
    const flow = STATE.test(state) ? await vault.peekFlow(state) : undefined;
    if (!flow || flow.binding !== undefined || !live(flow) || !oauthOf(projection, flow.upstream)) return expired(reply);
    const nonce = random();
    reply.header("set-cookie", cookie(confirmCookie(state), nonce, "Strict"));
    const [upstream, consumer] = [plain(flow.upstream), plain(flow.consumer)];
    return headersOf(reply.status(200)).send(
      `<!doctype html><meta charset="utf-8"><title>Connect your account at ${upstream}</title>` +
        `<h1>Connect your account at ${upstream}</h1>` +
        `<p>This gives the Manifold consumer <strong>${consumer}</strong> access to your account at ${upstream}: its tools will act as you.</p>` +
        `<p>Continue only if <strong>${consumer}</strong> is you (your own agent asked you to connect). If someone sent you this link, close this page.</p>` +
        `<form method="post" action="/oauth/connect/${state}"><input type="hidden" name="confirm" value="${nonce}"><button type="submit">Connect as ${consumer}</button></form>`,
    );
  });

  app.register(async (scope) => {
    // Only here: the confirmation form. Elsewhere the gateway takes JSON.
    scope.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: FORM_LIMIT }, (_request, body, done) => done(null, new URLSearchParams(body as string)));
    scope.post("/oauth/connect/:state", async (request: FastifyRequest<{ Params: { state: string }; Body: unknown }>, reply) => {
      const { state } = request.params;
      const submitted = request.body instanceof URLSearchParams ? (request.body.get("confirm") ?? undefined) : undefined;
      if (!STATE.test(state) || !sameSecret(submitted, cookiesOf(request).get(confirmCookie(state)))) {
        return page(reply, 403, "This confirmation did not come from the page this browser opened. Open the link again.");
      }
      const flow = await vault.peekFlow(state);
      const delegated = flow && live(flow) ? oauthOf(projection, flow.upstream) : undefined;
      if (!flow || !delegated) return expired(reply);
      const binding = random();
      const target = await authorization.authorizationUrl(flow.upstream, delegated.url, delegated.config, state, flow.verifier);
      if (!(await vault.bindFlow(state, sha256(binding), target.issuer))) return page(reply, 409, "This link was already confirmed. Call the tool again for a new one.");
      return reply
        .header("set-cookie", [cookie(bindingCookie(state), binding, "Lax"), cleared(confirmCookie(state))])
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .redirect(target.url, 303);
    });
  });

  app.get("/oauth/callback/:upstream", async (request: FastifyRequest<{ Params: { upstream: string }; Querystring: Record<string, string | undefined> }>, reply) => {
    const state = request.query.state;
    const valid = state !== undefined && STATE.test(state);
    const pending = valid ? await vault.peekFlow(state) : undefined;
    if (!valid || !pending) return page(reply, 400, "This authorization has expired or was already completed. Call the tool again for a new link.");
    // Another upstream's server answered this flow (a mix-up): its code goes nowhere, and the flow stays for its own answer.
    if (pending.upstream !== request.params.upstream) {
      logger.warn({ upstream: pending.upstream, answeredFor: request.params.upstream.slice(0, 64), consumer: pending.consumer }, "upstream account not connected: the callback came back on another upstream's address");
      return page(reply, 400, "This authorization came back for another upstream than the link's, so no account was connected.");
    }
    // Only the browser that confirmed: checked before the flow is taken, so a stray visitor cannot spend it.
    const presented = cookiesOf(request).get(bindingCookie(state));
    if (pending.binding === undefined || presented === undefined || !sameSecret(sha256(presented), pending.binding)) {
      logger.warn({ upstream: pending.upstream, consumer: pending.consumer }, "upstream account not connected: the callback came from a browser that did not confirm the link");
      return page(reply, 403, "This authorization was not confirmed in this browser, so no account was connected. Only the person who opened and confirmed the link can complete it.");
    }
    const flow = await vault.takeFlow(state);
    const delegated = flow && live(flow) ? oauthOf(projection, flow.upstream) : undefined;
    if (!flow || !delegated) return page(reply, 400, "This authorization has expired or was already completed. Call the tool again for a new link.");
    reply.header("set-cookie", cleared(bindingCookie(state)));
    try {
      const tokens = await authorization.redeem(flow.upstream, delegated.url, delegated.config, new URL(request.url, publicUrl), state, flow.verifier, flow.issuer);
      await vault.put(flow.consumer, flow.upstream, { ...tokens, resource: delegated.url, consumerCreated: flow.consumerCreated, connectedAt: Date.now() });
      logger.info({ upstream: flow.upstream, consumer: flow.consumer }, "upstream account connected");
      return page(reply, 200, `Your account at ${flow.upstream} is connected. You can close this window and retry.`);
    } catch (error) {
      logger.warn({ upstream: flow.upstream, consumer: flow.consumer, reason: error instanceof ManifoldError ? error.message : "failed" }, "upstream account not connected");
      return page(reply, 502, `Your account at ${flow.upstream} could not be connected. Call the tool again to retry.`);
    }
  });
}
