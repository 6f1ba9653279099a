import { deepText, type Random } from "./random.js";
import type { HttpCase } from "./exchange.js";

/** Route shapes of the admin API; `:n` is replaced by a hostile or unused name (never a live object's). */
const ROUTES = [
  "/v1/upstreams",
  "/v1/upstreams/:n",
  "/v1/upstreams/:n/discover",
  "/v1/virtual-servers",
  "/v1/virtual-servers/:n",
  "/v1/virtual-servers/:n/tools",
  "/v1/virtual-servers/:n/tools/remove",
  "/v1/virtual-servers/:n/tools/:n",
  "/v1/virtual-servers/:n/tools/:n/rename",
  "/v1/virtual-servers/:n/grants",
  "/v1/virtual-servers/:n/audit",
  "/v1/virtual-servers/:n/promote",
  "/v1/virtual-servers/:n/environments/:n",
  "/v1/virtual-servers/:n/prompts",
  "/v1/virtual-servers/:n/resource-templates",
  "/v1/virtual-servers/:n/aliases",
  "/v1/virtual-servers/:n/drift",
  "/v1/virtual-servers/:n/drift/items",
  "/v1/environments",
  "/v1/upstream-tools",
  "/v1/consumers",
  "/v1/consumers/:n",
  "/v1/consumers/:n/keys",
  "/v1/identity-providers",
  "/v1/environments/:n",
  "/v1/audit",
  "/v1/no-such-route",
  "/openapi.json",
];

/** Hostile admin requests: odd methods, bodies, names, query strings, content types and credentials. */
export function adminCase(r: Random, token: string): HttpCase {
  const name = () =>
    r.pick([`z${r.int(0, 1e6)}`, encodeURIComponent(r.string(r.int(1, 40))), r.token(r.int(64, 300)), "%", "%zz", "..", "%2e%2e", "Z-UPPER", "a".repeat(2_000), "__proto__", "constructor"]);
  const path = r.pick(ROUTES).replaceAll(":n", () => name());
  const query = r.chance(0.35)
    ? `?${r.pick([
        `limit=${r.pick(["0", "-1", "1e9", "abc", "", "1001", "[]"])}`,
        `after=${r.pick(["-1", "x", "1e400", "9".repeat(40), "%", "a".repeat(5_000)])}`,
        `q=${r.pick(["%", "%zz", "q".repeat(200), "__proto__"])}&environment=${r.pick(["default", "..", "Z"])}`,
        `since=${r.pick(["yesterday", "2026-13-45T00:00:00Z", "", "0"])}`,
        `__proto__[x]=1`,
        `constructor=1&constructor=2`,
        `tool=${encodeURIComponent(r.string(20))}`,
        `outcome=${r.token()}`,
        `a=${"q".repeat(r.int(1, 10_000))}`,
        r.token(r.int(1, 300)),
      ])}`
    : "";
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const kind = r.int(0, 9);
  const method = r.pick(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]);
  const base = { method, path: path + query, headers };
  // Bodies only where a route reads them (see the report: a body the registry never reads is parsed as the next request).
  if (method === "GET" || method === "HEAD" || method === "OPTIONS" || method === "DELETE") return { ...base, kind: kind === 5 ? "credentials" : "query-and-name", headers: kind === 5 ? { authorization: r.pick(["", "Bearer", `Bearer ${r.token()}`, `bearer ${token}`]) } : { authorization: `Bearer ${token}` } };
  switch (kind) {
    case 0:
      return { ...base, kind: "invalid-json", body: r.pick(["{", "[1,]", "nul", r.string(r.int(1, 100)), "\ufeff{}", '{"a":1}}']) };
    case 1:
      return { ...base, kind: "deep-nesting", body: `{"name":"z","transport":${deepText(r.pick([65, 3_000, 100_000]), r.chance(0.5))}}` };
    case 2:
      return { ...base, kind: "oversized", body: JSON.stringify({ name: "z", description: "o".repeat(1024 * 1024 + r.int(1, 1000)) }) };
    case 3:
      return { ...base, kind: "prototype-keys", body: r.pick(['{"__proto__":{"admin":true}}', '{"name":"z1","constructor":{"prototype":{"x":1}}}', '{"name":"z2","groups":{"__proto__":[]}}']) };
    case 4: {
      const type = r.pick(["text/plain", "application/xml", "multipart/form-data; boundary=x", "application/json; charset=latin1", "", "application/x-www-form-urlencoded"]);
      const c: HttpCase = { ...base, kind: "content-type", headers: { ...headers, "content-type": type }, body: JSON.stringify({ name: "z" }) };
      if (type === "") delete c.headers["content-type"];
      return c;
    }
    case 5:
      return { ...base, kind: "credentials", headers: { ...headers, authorization: r.pick(["", "Bearer", `Bearer ${r.token()}`, `Basic ${r.token()}`, `bearer ${token}`, `Bearer ${token}x`]) } };
    case 6:
      return { ...base, kind: "empty-body" };
    default:
      // Plausible bodies with hostile values: schema violations.
      return {
        ...base,
        kind: "schema-violation",
        body: JSON.stringify(
          r.pick([
            { name: name(), transport: r.json() },
            { name: r.json(), tools: r.json() },
            { name: name(), groups: [r.string(), r.json()] },
            { recordValues: r.json(), redactFields: r.json() },
            { grantId: r.json(), subject: r.json(), rateLimitPerMinute: r.json() },
            { name: name(), issuer: r.string(), audience: r.json(), jwksUrl: r.pick(["file:///etc/passwd", "http://169.254.169.254/", r.string()]) },
            r.json(),
          ]),
        ),
      };
  }
}
