import { StreamableHttpTransport } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { sessionHeaders, withoutServiceCredential } from "./sessionHeaders.js";

const plain = StreamableHttpTransport.parse({ type: "streamable-http", url: "https://up.example/mcp", headers: { "X-Tenant": "acme" }, secretHeaders: { authorization: "env:S", "X-Api-Key": "env:K" } });
const perUser = StreamableHttpTransport.parse({ ...plain, auth: { type: "oauth", clientId: "manifold" } });
const resolved = { authorization: "Bearer service", "X-Api-Key": "service-key" };

describe("the headers of one upstream session", () => {
  test("the shared session sends the registration's headers and its credential", () => {
    expect(withoutServiceCredential(perUser, undefined)).toBe(false);
    expect(sessionHeaders(perUser, resolved, undefined)).toEqual({ "X-Tenant": "acme", authorization: "Bearer service", "X-Api-Key": "service-key" });
  });

  test("a caller's session of a per-user upstream sends the plain headers and the caller's token, never the service credential", () => {
    expect(withoutServiceCredential(perUser, { Authorization: "Bearer alice" })).toBe(true);
    expect(sessionHeaders(perUser, resolved, { Authorization: "Bearer alice" })).toEqual({ "X-Tenant": "acme", Authorization: "Bearer alice" });
    // A caller partitioned for its roots, with no header of its own, gets no service credential either.
    expect(sessionHeaders(perUser, resolved, {})).toEqual({ "X-Tenant": "acme" });
  });

  test("a pass-through header replaces the registration's of the same name in any case", () => {
    expect(withoutServiceCredential(plain, { Authorization: "Bearer bob" })).toBe(false);
    expect(sessionHeaders(plain, resolved, { Authorization: "Bearer bob", "x-tenant": "bobs" })).toEqual({ "X-Api-Key": "service-key", Authorization: "Bearer bob", "x-tenant": "bobs" });
  });
});

describe("headers the transport owns", () => {
  // As a registration recorded before the registry refused them replays.
  const recorded = { ...plain, headers: { Host: "other.example", "X-Tenant": "acme" } };

  test("never go out from a recorded registration, nor from a caller", () => {
    expect(sessionHeaders(recorded, { "Content-Length": "0" }, { "Mcp-Session-Id": "someone-elses", "X-Tenant": "bobs" })).toEqual({ "X-Tenant": "bobs" });
  });
});
