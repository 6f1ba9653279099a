import { ManifoldError } from "./errors.js";

/**
 * Which `Host` and `Origin` values a service serves (`any` turns a check off), and the settings
 * that say so, which a refusal names.
 */
export interface HostPolicy {
  readonly hosts: ReadonlySet<string> | "any";
  readonly origins: ReadonlySet<string> | "any";
  readonly settings: { readonly service: string; readonly hosts: string; readonly origins: string };
}

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];
const isLoopback = (bind: string) => bind === "localhost" || bind === "::1" || bind.startsWith("127.");
const list = (value: string) =>
  value
    .split(",")
    .map((entry) => entry.trim().toLowerCase().replace(/\/+$/, ""))
    .filter(Boolean);

/**
 * The policy from the configuration. Hosts are names (any port); without a list, a service bound
 * to loopback serves only the loopback names (a DNS-rebinding page's own name is refused), one
 * bound elsewhere serves any host (behind a load balancer, list the public names). Origins are
 * `scheme://host[:port]`; a browser page may always call the host it was served from. `prefix`
 * names the service's settings (`GATEWAY` → `GATEWAY_ALLOWED_HOSTS`, `GATEWAY_ALLOWED_ORIGINS`).
 */
export function hostPolicy(bindHost: string, allowedHosts: string | undefined, allowedOrigins: string | undefined, prefix: "GATEWAY" | "REGISTRY"): HostPolicy {
  const hosts = allowedHosts === undefined ? (isLoopback(bindHost) ? LOOPBACK_NAMES : ["*"]) : list(allowedHosts);
  const origins = list(allowedOrigins ?? "");
  return {
    hosts: hosts.includes("*") ? "any" : new Set(hosts),
    origins: origins.includes("*") ? "any" : new Set(origins),
    settings: { service: prefix.toLowerCase(), hosts: `${prefix}_ALLOWED_HOSTS`, origins: `${prefix}_ALLOWED_ORIGINS` },
  };
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
    return new ManifoldError("host_not_allowed", `the ${policy.settings.service} does not serve that host (see ${policy.settings.hosts})`);
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
  return sameHost ? undefined : new ManifoldError("origin_not_allowed", `requests from that origin are not allowed (see ${policy.settings.origins})`);
}

/**
 * Why an HTTP request is refused by `policy`, or undefined: every path but the liveness and
 * readiness probes is checked (a kubelet's probe names the pod's address, not a served host).
 */
export function requestRefusal(policy: HostPolicy, url: string, headers: { host?: string | undefined; origin?: string | string[] | undefined }): ManifoldError | undefined {
  if (policy.hosts === "any" && policy.origins === "any") return undefined;
  if (url === "/healthz" || url === "/readyz") return undefined;
  const origin = Array.isArray(headers.origin) ? headers.origin[0] : headers.origin;
  return refusal(policy, headers.host, origin);
}
