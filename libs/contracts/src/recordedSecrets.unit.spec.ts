import { describe, expect, test } from "vitest";
import { shownIdentityProvider, shownTransport, WITHHELD_SECRET } from "./recordedSecrets.js";
import type { UpstreamTransport } from "./upstream.js";

const JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
const http = (fields: Partial<Extract<UpstreamTransport, { type: "streamable-http" }>>): UpstreamTransport => ({ type: "streamable-http", url: "https://mcp.example/mcp", headers: {}, secretHeaders: {}, ...fields });
const stdio = (fields: Partial<Extract<UpstreamTransport, { type: "stdio" }>>): UpstreamTransport => ({ type: "stdio", command: "node", args: [], env: {}, secretEnv: {}, ...fields });

describe("a transport recorded before the literal-secret checks, as it is shown", () => {
  test.each([
    ["a URL fragment", http({ url: "https://mcp.example/mcp#access_token=tok-123" }), { url: "https://mcp.example/mcp" }, ["transport.url"]],
    ["a path parameter", http({ url: "https://mcp.example/mcp;jsessionid=abc123/x?region=eu" }), { url: "https://mcp.example/mcp/x?region=eu" }, ["transport.url"]],
    ["user info and a credential query", http({ url: "https://u:p@mcp.example/mcp?api_key=k1&region=eu" }), { url: "https://mcp.example/mcp?region=eu" }, ["transport.url"]],
    ["a JWT under a harmless header name", http({ headers: { "X-Trace": JWT, "X-Region": "eu" } }), { headers: { "X-Trace": WITHHELD_SECRET, "X-Region": "eu" } }, ["transport.headers.X-Trace"]],
    ["an authorization server's issuer with a token", http({ auth: { type: "token-exchange", issuer: "https://as.example/?access_token=tok-123", clientId: "c", scopes: [] } }), { auth: { issuer: "https://as.example/" } }, ["transport.auth.issuer"]],
    ["a flag with a credential", stdio({ args: ["server.js", "--api-key=k-123", "--port", "1"] }), { args: ["server.js", WITHHELD_SECRET, "--port", "1"] }, ["transport.args.1"]],
    ["a command line with a credential", stdio({ command: "npx -y server --token t-123" }), { command: `npx ${WITHHELD_SECRET}` }, ["transport.command"]],
    ["a credential-like variable", stdio({ env: { API_TOKEN: "t-123", LOG: "debug" } }), { env: { API_TOKEN: WITHHELD_SECRET, LOG: "debug" } }, ["transport.env.API_TOKEN"]],
  ] as const)("%s is withheld, its field named", (_, transport, shown, fields) => {
    const result = shownTransport(transport);
    expect(result.transport).toMatchObject(shown);
    expect(result.literalSecrets).toEqual(fields);
    expect(JSON.stringify(result.transport)).not.toMatch(/tok-123|abc123|k1|k-123|t-123|c2lnbmF0dXJl|u:p@/);
  });

  test("a transport without one is shown as it is, the same object", () => {
    const transport = http({ url: "https://mcp.example/mcp?region=eu", headers: { "X-Region": "eu" } });
    expect(shownTransport(transport)).toEqual({ transport, literalSecrets: [] });
    expect(shownTransport(transport).transport).toBe(transport);
  });

  test("an identity provider's issuer and key set URL are shown without their credentials, each named", () => {
    const provider = { name: "idp", issuer: "https://idp.example/?access_token=tok-123", audience: "a", jwksUrl: "https://u:p@idp.example/jwks", consumerClaim: "sub", groupsClaim: "groups", groups: [] };
    const shown = shownIdentityProvider(provider);
    expect(shown).toMatchObject({ issuer: "https://idp.example/", jwksUrl: "https://idp.example/jwks", literalSecrets: ["issuer", "jwksUrl"] });
    expect(shownIdentityProvider({ ...provider, issuer: "https://idp.example/", jwksUrl: "https://idp.example/jwks" })).not.toHaveProperty("literalSecrets");
  });
});
