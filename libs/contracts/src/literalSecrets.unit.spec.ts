import { describe, expect, test } from "vitest";
import { RegisterUpstreamBody } from "./commands.js";
import { RecordedUpstreamTransport, UpstreamOptions } from "./upstream.js";
import { IdentityProvider, IdentityProviderBody } from "./access.js";

const SECRET = "s3cr3t-VALUE-7781";
const JWT = `eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ${SECRET}In0.c2lnbmF0dXJl`;
const http = (transport: Record<string, unknown>) => ({ name: "u", transport: { type: "streamable-http", url: "https://up.example/mcp", ...transport } });
const stdio = (transport: Record<string, unknown>) => ({ name: "u", transport: { type: "stdio", command: "node", ...transport } });

/** The issues of a refused registration: where, and the message (which must never hold the value). */
const refusal = (body: unknown) => {
  const result = RegisterUpstreamBody.safeParse(body);
  if (result.success) return undefined;
  return result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
};

describe("literal secrets in a registration", () => {
  test.each([
    ["URL user info", http({ url: `http://user:${SECRET}@up.example/mcp` }), "transport.url", "user info"],
    ["URL user name only", http({ url: `http://${SECRET}@up.example/mcp` }), "transport.url", "user info"],
    ["api_key query parameter", http({ url: `https://up.example/mcp?api_key=${SECRET}` }), "transport.url", "'api_key'"],
    ["token query parameter", http({ url: `https://up.example/mcp?x=1&access_token=${SECRET}` }), "transport.url", "'access_token'"],
    ["key query parameter", http({ url: `https://up.example/mcp?key=${SECRET}` }), "transport.url", "'key'"],
    // Sent nowhere (fetch drops a fragment), but recorded and shown as written: the event log kept it.
    ["access_token in the fragment", http({ url: `https://up.example/mcp#access_token=${SECRET}&token_type=bearer` }), "transport.url", "'access_token'"],
    ["a session in a path parameter", http({ url: `https://up.example/mcp;jsessionid=${SECRET}` }), "transport.url", "'jsessionid'"],
    ["Authorization header", http({ headers: { Authorization: `Bearer ${SECRET}` } }), "transport.headers.Authorization", "secretHeaders"],
    ["X-Auth header", http({ headers: { "X-Auth": SECRET } }), "transport.headers.X-Auth", "secretHeaders"],
    ["X-Api-Key header", http({ headers: { "X-Api-Key": SECRET } }), "transport.headers.X-Api-Key", "secretHeaders"],
    ["Cookie header", http({ headers: { Cookie: `sid=${SECRET}` } }), "transport.headers.Cookie", "secretHeaders"],
    ["Private-Token header", http({ headers: { "Private-Token": SECRET } }), "transport.headers.Private-Token", "secretHeaders"],
    ["a Bearer value under another name", http({ headers: { "X-Custom": `Bearer ${SECRET}` } }), "transport.headers.X-Custom", "credential-like value"],
    // A signed token is a credential whatever its header is called (Google IAP and WSO2 send one in `X-Jwt-Assertion`).
    ["a JWT under another name", http({ headers: { "X-Jwt-Assertion": JWT } }), "transport.headers.X-Jwt-Assertion", "credential-like value"],
    ["a JWT in a variable", stdio({ env: { IAP_ASSERTION: JWT } }), "transport.env.IAP_ASSERTION", "credential-like value"],
    ["a JWT argument", stdio({ args: ["--assertion", JWT] }), "transport.args.1", "carries a credential"],
    ["a JWT flag value", stdio({ args: [`--assertion=${JWT}`] }), "transport.args.0", "carries a credential"],
    // A whole command line pasted into `command`: its refusal by MANIFOLD_STDIO_COMMANDS quoted it.
    ["a command line with a credential", stdio({ command: `npx -y server-github --token ${SECRET}` }), "transport.command", "secretEnv"],
    ["a NUL in a plain header", http({ headers: { "X-Team": `a\u0000${SECRET}` } }), "transport.headers.X-Team", "value withheld"],
    ["a line break in a plain header", http({ headers: { "X-Team": `a\r\n${SECRET}` } }), "transport.headers.X-Team", "value withheld"],
    ["--token=x", stdio({ args: ["server.js", `--token=${SECRET}`] }), "transport.args.1", "'token'"],
    ["--api-key x", stdio({ args: ["--api-key", SECRET] }), "transport.args.0", "'api-key'"],
    ["--password x", stdio({ args: ["--password", SECRET] }), "transport.args.0", "'password'"],
    ["-p style short secret flag", stdio({ args: ["-secret", SECRET] }), "transport.args.0", "'secret'"],
    ["a header as an argument", stdio({ args: ["--header", `Authorization: Bearer ${SECRET}`] }), "transport.args.1", "'Authorization'"],
    ["NAME=value argument", stdio({ args: [`GITHUB_TOKEN=${SECRET}`] }), "transport.args.0", "'GITHUB_TOKEN'"],
    ["a URL argument with user info", stdio({ args: [`postgres://app:${SECRET}@db/app`] }), "transport.args.0", "user info"],
    ["credential-named variable", stdio({ env: { API_TOKEN: SECRET } }), "transport.env.API_TOKEN", "secretEnv"],
    ["password variable", stdio({ env: { DB_PASSWORD: SECRET } }), "transport.env.DB_PASSWORD", "secretEnv"],
    ["a URL with credentials in a variable", stdio({ env: { DATABASE_URL: `postgres://app:${SECRET}@db/app` } }), "transport.env.DATABASE_URL", "credential-like value"],
    ["a NUL in a variable", stdio({ env: { MODE: `a\u0000${SECRET}` } }), "transport.env.MODE", "value withheld"],
  ])("refuses %s, naming the field and the reference mechanism, never the value", (_what, body, path, hint) => {
    const issues = refusal(body);
    expect(issues, "refused").toBeDefined();
    const issue = issues!.find((i) => i.path === path);
    expect(issue, JSON.stringify(issues)).toBeDefined();
    expect(issue!.message).toContain(hint);
    expect(JSON.stringify(issues)).not.toContain(SECRET);
    expect(JSON.stringify(issues)).not.toContain("eyJ");
    if (hint !== "value withheld") expect(issue!.message).toMatch(/env:NAME or file:\/path/);
  });

  test.each([
    ["a plain URL with ordinary parameters", http({ url: "https://up.example/mcp?region=eu&page=2" })],
    ["ordinary headers", http({ headers: { "X-Team": "platform", "User-Agent": "m/1 é" } })],
    ["references", http({ secretHeaders: { Authorization: "env:MANIFOLD_SECRET_T", "X-Api-Key": "file:/run/secrets/key" } })],
    ["ordinary arguments", stdio({ args: ["-y", "@modelcontextprotocol/server-memory", "--port", "3000", "--verbose", "/srv/data"] })],
    ["flags naming where a credential is", stdio({ args: ["--token-file", "/run/secrets/t", "--api-key-env=MY_KEY"] })],
    ["a secret flag without a value", stdio({ args: ["serve", "--no-auth"] })],
    ["a plain URL argument", stdio({ args: ["https://api.example/v1?region=eu"] })],
    ["ordinary variables", stdio({ env: { NODE_ENV: "production", LOG_LEVEL: "debug", PWD: "/srv" } })],
  ])("accepts %s", (_what, body) => {
    expect(refusal(body)).toBeUndefined();
  });

  test("an event recorded before the checks grew stricter still replays", () => {
    const recorded = { type: "streamable-http", url: "https://up.example/mcp", headers: { "X-Custom": "Bearer legacy" } };
    expect(RecordedUpstreamTransport.safeParse(recorded).success).toBe(true);
  });

  // attack (helper-94): these URLs took credentials, into the event log, the admin API and export.
  test.each([
    ["an OAuth issuer with user info", http({ auth: { type: "oauth", clientId: "c", issuer: `https://u:${SECRET}@as.example/` } }), "transport.auth.issuer"],
    ["a resource indicator with a token", http({ auth: { type: "oauth", clientId: "c", resource: `https://up.example/mcp?access_token=${SECRET}` } }), "transport.auth.resource"],
    ["a token-exchange issuer with a key", http({ auth: { type: "token-exchange", clientId: "c", issuer: `https://idp.example/?api_key=${SECRET}` } }), "transport.auth.issuer"],
  ])("refuses %s", (_what, body, path) => {
    const issues = refusal(body);
    expect(issues?.map((i) => i.path)).toContain(path);
    expect(JSON.stringify(issues)).not.toContain(SECRET);
    expect(JSON.stringify(issues)).not.toContain("eyJ");
  });

  test("an identity provider's issuer and JWKS URL carry no credentials; a recorded one still replays", () => {
    const provider = { name: "idp", audience: "manifold", issuer: `https://idp.example/?token=${SECRET}`, jwksUrl: `https://u:${SECRET}@idp.example/jwks` };
    const refused = IdentityProviderBody.safeParse(provider);
    expect(refused.error?.issues.map((i) => i.path.join("."))).toEqual(["issuer", "jwksUrl"]);
    expect(JSON.stringify(refused.error?.issues)).not.toContain(SECRET);
    expect(IdentityProvider.safeParse(provider).success).toBe(true);
  });
});

describe("plainPassthroughHeaders: names the operator says carry no credential", () => {
  test("a plain name is accepted; a credential-like one is refused, named by its index", () => {
    expect(UpstreamOptions.parse({ passthroughHeaders: ["X-Region", "Authorization"], plainPassthroughHeaders: ["X-Region"] }).plainPassthroughHeaders).toEqual(["X-Region"]);
    const refused = UpstreamOptions.safeParse({ plainPassthroughHeaders: ["X-Region", "X-Api-Key"] });
    expect(refused.success).toBe(false);
    expect(refused.error?.issues.map((i) => [i.path.join("."), i.message])).toEqual([["plainPassthroughHeaders.1", expect.stringContaining("'X-Api-Key' looks like a credential")]]);
  });
});
