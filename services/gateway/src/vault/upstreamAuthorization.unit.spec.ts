import type { ScopedSecrets } from "@manifold/contracts";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { resourceIndicator, toTokenSet, UpstreamAuthorization } from "./upstreamAuthorization.js";

const YEAR_MS = 365 * 24 * 3600 * 1000;
const token = (expires_in: number) => toTokenSet({ access_token: "t", token_type: "bearer", expires_in });

describe("a token response as the vault keeps it", () => {
  test("an authorization server's expires_in is clamped to [0, a year]: every expiry is a date", () => {
    const now = Date.now();
    for (const expiresIn of [1e300, Number.MAX_VALUE, 10 * 365 * 24 * 3600]) {
      const { expiresAt } = token(expiresIn);
      expect(expiresAt! - now).toBeGreaterThanOrEqual(YEAR_MS - 1_000);
      expect(expiresAt! - now).toBeLessThanOrEqual(YEAR_MS + 1_000);
      expect(() => new Date(expiresAt!).toISOString()).not.toThrow();
    }
    expect(token(-3600).expiresAt! - now).toBeLessThan(1_000);
    expect(token(3600).expiresAt! - now).toBeGreaterThan(3_599_000);
  });
});

// An upstream registered before the literal-secret checks may have a recorded URL carrying
// credentials (user info, a credential query, a path parameter, a fragment), and one registered
// without `auth.resource` had that URL sent as its RFC 8707 resource indicator: in the browser's
// authorization request and in every token request, to the authorization server.
describe("the resource indicator an authorization server is sent", () => {
  const SECRET = { password: "pw-5e1a7e", query: "qs-9c0ffee", path: "pp-d00d", fragment: "fr-beef" };
  const seen: string[] = [];
  let server: Server;
  let base = "";

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => {
        seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ""} ${body}`);
        const json = (value: object) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(value));
        // The upstream's protected resource metadata (RFC 9728) names its URL as it is, credentials aside.
        if (req.url === "/.well-known/oauth-protected-resource/mcp?region=eu") return json({ resource: `${base}/mcp?region=eu`, authorization_servers: [base] });
        if (req.url === "/.well-known/oauth-authorization-server") return json({ issuer: base, authorization_endpoint: `${base}/authorize`, token_endpoint: `${base}/token` });
        if (req.url === "/token") return json({ access_token: "at", token_type: "bearer", expires_in: 60 });
        res.writeHead(404).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const recordedUrl = () => `http://ops:${SECRET.password}@${base.slice(7)}/mcp;jsessionid=${SECRET.path}?access_token=${SECRET.query}&region=eu#${SECRET.fragment}`;
  const authorization = () => new UpstreamAuthorization({} as ScopedSecrets, (name) => `https://gw.example/oauth/callback/${name}`, { allowHttp: true });

  test.each([
    ["its issuer configured", true],
    ["its authorization server found from the upstream (RFC 9728)", false],
  ])("with %s, no credential of the recorded URL reaches it", async (_, configured) => {
    seen.length = 0;
    const config = { type: "oauth" as const, clientId: "manifold", scopes: [], ...(configured && { issuer: base }) };
    const { url } = await authorization().authorizationUrl("docs", recordedUrl(), config, "state-1", "v".repeat(43));
    await authorization().refresh("docs", recordedUrl(), config, "rt", base);
    // What the browser takes to the authorization server, and what Manifold sent it itself.
    const sent = [url, ...seen].join("\n");
    for (const secret of Object.values(SECRET)) expect(sent).not.toContain(secret);
    expect(new URL(url).searchParams.get("resource")).toBe(`${base}/mcp?region=eu`);
  });

  test("a URL without credentials is its own resource indicator, but for a fragment", () => {
    expect(resourceIndicator("https://docs.example/mcp?region=eu")).toBe("https://docs.example/mcp?region=eu");
    expect(resourceIndicator("https://docs.example/mcp#team-7")).toBe("https://docs.example/mcp");
  });

  test("a recorded auth.resource with credentials is sent without them", async () => {
    const config = { type: "oauth" as const, clientId: "manifold", scopes: [], issuer: base, resource: recordedUrl() };
    const { url } = await authorization().authorizationUrl("docs", `${base}/mcp`, config, "state-1", "v".repeat(43));
    expect(new URL(url).searchParams.get("resource")).toBe(`${base}/mcp?region=eu`);
  });
});
