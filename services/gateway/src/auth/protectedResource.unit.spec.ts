import Fastify from "fastify";
import { expect, test } from "vitest";
import { publicBase } from "./protectedResource.js";

// Behind a proxy named in GATEWAY_TRUST_PROXY, fastify's request.host and request.protocol are the
// proxy's X-Forwarded-Host and X-Forwarded-Proto, which the host guard (it checks Host) never saw:
// the resource URL a token's audience must name would be the caller's choice.
test("attack: a resource URL is built from the Host the guard checked, never from X-Forwarded-Host or X-Forwarded-Proto", async () => {
  const app = Fastify({ trustProxy: ["127.0.0.1"] });
  app.get("/mcp/vs", (request) => ({ base: publicBase(undefined, request, true), port: request.socket.localPort }));
  await app.listen({ host: "127.0.0.1", port: 0 });
  try {
    const { port } = app.server.address() as { port: number };
    const answer = (await (await fetch(`http://127.0.0.1:${port}/mcp/vs`, { headers: { "x-forwarded-host": "evil.example", "x-forwarded-proto": "https" } })).json()) as { base: string };
    expect(answer.base).toBe(`http://127.0.0.1:${port}`);
  } finally {
    await app.close();
  }
});
