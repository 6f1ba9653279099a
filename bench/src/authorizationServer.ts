// A minimal but real OAuth 2.1 authorization server, only to seed the vault for the bench's
// vault lane without test dependencies: RFC 8414 metadata, the authorization code grant with
// PKCE (S256 only), `iss` on the redirect (RFC 9207), a confidential client authenticated by
// `client_secret_post`, single-use codes bound to client, redirect URI and challenge. It signs
// every user in as one account with no login page: the bench measures calls, not consent.
// Access tokens are opaque and live a day (no refresh falls inside a run).
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface BenchAuthorizationServer {
  issuer: string;
  close(): Promise<void>;
}

interface Pending {
  redirectUri: string;
  challenge: string;
  expiresAt: number;
}

const CODE_TTL_MS = 60_000;
const random = () => randomBytes(32).toString("base64url");
const s256 = (verifier: string) => createHash("sha256").update(verifier).digest("base64url");

export async function startBenchAuthorizationServer(client: { clientId: string; clientSecret: string; redirectUri: string }): Promise<BenchAuthorizationServer> {
  const codes = new Map<string, Pending>();
  let issuer = "";

  const json = (res: ServerResponse, status: number, body: unknown) =>
    void res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(body));
  const readForm = (req: IncomingMessage) =>
    new Promise<URLSearchParams>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (c: Buffer) => {
        size += c.length;
        if (size > 16_384) req.destroy(new Error("too large"));
        else chunks.push(c);
      });
      req.on("end", () => resolve(new URLSearchParams(Buffer.concat(chunks).toString("utf8"))));
      req.on("error", reject);
    });

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", issuer);
    if (req.method === "GET" && url.pathname === "/.well-known/oauth-authorization-server") {
      return json(res, 200, {
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        response_types_supported: ["code"],
        grant_types_supported: ["authorization_code"],
        code_challenge_methods_supported: ["S256"],
        token_endpoint_auth_methods_supported: ["client_secret_post"],
        authorization_response_iss_parameter_supported: true,
      });
    }
    if (req.method === "GET" && url.pathname === "/authorize") {
      const q = url.searchParams;
      const ok = q.get("response_type") === "code" && q.get("client_id") === client.clientId && q.get("redirect_uri") === client.redirectUri && q.get("code_challenge_method") === "S256" && q.get("code_challenge") && q.get("state");
      if (!ok) return json(res, 400, { error: "invalid_request" });
      const code = random();
      codes.set(code, { redirectUri: client.redirectUri, challenge: q.get("code_challenge")!, expiresAt: Date.now() + CODE_TTL_MS });
      const back = new URL(client.redirectUri);
      back.searchParams.set("code", code);
      back.searchParams.set("state", q.get("state")!);
      back.searchParams.set("iss", issuer);
      return void res.writeHead(302, { location: back.href }).end();
    }
    if (req.method === "POST" && url.pathname === "/token") {
      return void readForm(req).then((form) => {
        const code = form.get("code") ?? "";
        const pending = codes.get(code);
        codes.delete(code);
        if (form.get("client_id") !== client.clientId || form.get("client_secret") !== client.clientSecret) return json(res, 401, { error: "invalid_client" });
        const valid =
          form.get("grant_type") === "authorization_code" && pending && pending.expiresAt > Date.now() && form.get("redirect_uri") === pending.redirectUri && s256(form.get("code_verifier") ?? "") === pending.challenge;
        if (!valid) return json(res, 400, { error: "invalid_grant" });
        json(res, 200, { access_token: random(), token_type: "Bearer", expires_in: 86_400 });
      }, () => json(res, 400, { error: "invalid_request" }));
    }
    json(res, 404, { error: "not_found" });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { issuer, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
