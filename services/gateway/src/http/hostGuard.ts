import { ManifoldError } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";
import { errorEnvelope } from "../jsonRpc.js";

/** Which `Host` and `Origin` values the gateway serves; `any` turns a check off. */
export interface HostPolicy {
  readonly hosts: ReadonlySet<string> | "any";
  readonly origins: ReadonlySet<string> | "any";
}

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];
const isLoopback = (bind: string) => bind === "localhost" || bind === "::1" || bind.startsWith("127.");
const list = (value: string) =>
  value
    .split(",")
    .map((entry) => entry.trim().toLowerCase().replace(/\/+$/, ""))
    .filter(Boolean);

/**
 * The policy from the configuration. Hosts are names (any port); without a list, a gateway bound
 * to loopback serves only the loopback names (a DNS-rebinding page's own name is refused), one
 * bound elsewhere serves any host (behind a load balancer, list the public names). Origins are
 * `scheme://host[:port]`; a browser page may always call the host it was served from.
 */
export function hostPolicy(bindHost: string, allowedHosts: string | undefined, allowedOrigins: string | undefined): HostPolicy {
  const hosts = allowedHosts === undefined ? (isLoopback(bindHost) ? LOOPBACK_NAMES : ["*"]) : list(allowedHosts);
  const origins = list(allowedOrigins ?? "");
  return { hosts: hosts.includes("*") ? "any" : new Set(hosts), origins: origins.includes("*") ? "any" : new Set(origins) };
}

/**
 * `example.com:8080` → `example.com`, `[::1]:80` → `[::1]`; undefined when what follows the name is
 * not a port (`127.0.0.1:abc`, `:99999`, `[::1]x:1`): such a Host names no server, this one included.
 */
function hostnameOf(host: string): string | undefined {
  const end = host.startsWith("[") ? host.indexOf("]") + 1 : host.indexOf(":");
  if (end <= 0) return host.toLowerCase();
  const port = host.slice(end);
  if (port !== "" && !(/^:\d{0,5}$/.test(port) && Number(port.slice(1)) <= 65_535)) return undefined;
  return host.slice(0, end).toLowerCase();
}

/** Why a request's `Host` or `Origin` is refused, or undefined when both are allowed. */
export function refusal(policy: HostPolicy, host: string | undefined, origin: string | undefined): ManifoldError | undefined {
  const name = host === undefined ? undefined : hostnameOf(host);
  if (policy.hosts !== "any" && (name === undefined || !policy.hosts.has(name))) {
    return new ManifoldError("host_not_allowed", "this gateway does not serve that host (see GATEWAY_ALLOWED_HOSTS)");
  }
  if (origin === undefined || policy.origins === "any") return undefined;
  const normalized = origin.toLowerCase();
  if (policy.origins.has(normalized)) return undefined;
  let sameHost = false;
  try {
    sameHost = host !== undefined && new URL(normalized).host === host.toLowerCase();
  } catch {
    // Not a URL (`null`, garbage): not the same host.
  }
  return sameHost ? undefined : new ManifoldError("origin_not_allowed", "requests from that origin are not allowed (see GATEWAY_ALLOWED_ORIGINS)");
}

/** Every route but the liveness and readiness probes checks `Host` and `Origin` first. */
export function guardHosts(app: FastifyInstance, policy: HostPolicy): void {
  if (policy.hosts === "any" && policy.origins === "any") return;
  app.addHook("onRequest", (request, reply, done) => {
    const path = request.url;
    if (path === "/healthz" || path === "/readyz") return done();
    const origin = request.headers.origin;
    const refused = refusal(policy, request.headers.host, Array.isArray(origin) ? origin[0] : origin);
    if (!refused) return done();
    void reply.status(refused.httpStatus).send(errorEnvelope(refused.code, refused.message));
  });
}
