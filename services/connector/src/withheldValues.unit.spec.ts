import { describe, expect, test } from "vitest";
import { MAX_VALUES_PER_REFERENCE, echoForms, redact, redactJson, redactResult, withhold, withholdHeaders, withholdRecordedLiterals, withholdResolved } from "./withheldValues.js";

describe("credential values withheld from what upstreams answer", () => {
  test("a recorded registration's literal secrets are withheld, each form an upstream may quote; its plain values are not", () => {
    withholdRecordedLiterals({
      type: "streamable-http",
      url: "https://ops:url-password-0123@mcp.example/p;jsessionid=path-param-0123?access_token=query-token-0123&format=markdown-long#id_token=fragment-0123",
      headers: { "X-Api-Key": "header-secret-0123", "X-Region": "eu-west-1-long-region" },
      secretHeaders: {},
    });
    withholdRecordedLiterals({ type: "stdio", command: "/usr/bin/tool", args: ["--api-key=arg-secret-0123", "--verbose-logging"], env: { API_TOKEN: "env-secret-0123", LANG: "en_US.UTF-8" }, secretEnv: {} });
    for (const secret of ["url-password-0123", "path-param-0123", "query-token-0123", "fragment-0123", "header-secret-0123", "arg-secret-0123", "env-secret-0123"]) {
      expect(redact(`refused ${secret}`), secret).toBe("refused [redacted]");
    }
    expect(redact("eu-west-1-long-region --verbose-logging en_US.UTF-8 /usr/bin/tool")).toBe("eu-west-1-long-region --verbose-logging en_US.UTF-8 /usr/bin/tool");
    // A plain query value of the same URL is no secret: withheld, it was blanked in every answer the process passed on.
    expect(redact("rendered as markdown-long")).toBe("rendered as markdown-long");
  });

  test("a value is redacted wherever it appears, its token alone too, until released", () => {
    const release = withhold(["Bearer tok-0123456789", "plain-secret-value"]);
    expect(redact("got Bearer tok-0123456789 and tok-0123456789, plain-secret-value twice: plain-secret-value")).toBe(
      "got [redacted] and [redacted], [redacted] twice: [redacted]",
    );
    release();
    release();
    expect(redact("tok-0123456789")).toBe("tok-0123456789");
  });

  test("a Cookie credential is withheld as each of its values too", () => {
    const release = withhold(["session=cookie-session-0123; theme=dark; csrf=csrf-token-4567"]);
    expect(redact("session cookie-session-0123 expired, csrf csrf-token-4567, theme dark")).toBe("session [redacted] expired, csrf [redacted], theme dark");
    release();
  });

  test("a Basic credential is withheld decoded too: the user and password, and the password alone", () => {
    const release = withhold([`Basic ${Buffer.from("svc-reader:pass-0123456789").toString("base64")}`]);
    expect(redact("refused svc-reader:pass-0123456789 (password pass-0123456789)")).toBe("refused [redacted] (password [redacted])");
    release();
  });

  test("values held by two sessions stay withheld until both let go; short values are not withheld", () => {
    const first = withhold(["shared-credential"]);
    const second = withhold(["shared-credential", "abc"]);
    first();
    expect(redact("shared-credential abc")).toBe("[redacted] abc");
    second();
    expect(redact("shared-credential")).toBe("shared-credential");
  });

  test("JSON data keeps its shape, with the value redacted in its strings", () => {
    const release = withhold(["k-live-secret-42"]);
    const data = { request: { headers: { "x-api-key": "k-live-secret-42" } }, n: 1 };
    expect(redactJson(data)).toEqual({ request: { headers: { "x-api-key": "[redacted]" } }, n: 1 });
    const clean = { ok: true };
    expect(redactJson(clean)).toBe(clean);
    release();
  });

  test("a value holding a quote or a backslash is redacted in JSON data too, in keys as in values", () => {
    const value = 'pa"ss\\word-99';
    const release = withhold([value]);
    const data = { detail: `key ${value} refused`, [value]: [1, { echoed: value }], n: 2 };
    expect(redactJson(data)).toEqual({ detail: "key [redacted] refused", "[redacted]": [1, { echoed: "[redacted]" }], n: 2 });
    expect(JSON.stringify(redactJson(data))).not.toContain("word-99");
    release();
  });

  test("a rotated secret's old values stay withheld (a session opened before may still send them), the oldest let go past the bound", () => {
    const ref = { "X-Api-Key": "file:/run/secrets/key" };
    const values = Array.from({ length: MAX_VALUES_PER_REFERENCE + 1 }, (_, i) => `rotating-value-${i}`);
    for (const value of values) withholdResolved(ref, { "X-Api-Key": value });
    expect(redact(values.join(" "))).toBe(["rotating-value-0", ...values.slice(1).map(() => "[redacted]")].join(" "));
    // Rotated back to a value still withheld: withheld once, not twice.
    withholdResolved(ref, { "X-Api-Key": values[1]! });
    expect(redact(values[1]!)).toBe("[redacted]");
  });

  test("of a caller's pass-through headers, short plain values are not withheld", () => {
    const release = withholdHeaders({ Authorization: "Bearer caller-token-1", "X-Api-Key": "caller-api-key", "X-Tenant": "tenant-acme" });
    expect(redact("caller-token-1 caller-api-key tenant-acme")).toBe("[redacted] [redacted] tenant-acme");
    release();
  });

  test("a pass-through value of OPAQUE_MIN_LENGTH or more is withheld under any name, in any shape; a shorter plain one is not", () => {
    const hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b";
    const headers = { "X-Tenant-Pass": hex, "X-Upstream-Ident": "0b6c3f2e-5d1a-4c1e-9a7b-2f3e4d5c6b7a", "X-Region": "eu-west-1", "X-Format": "markdown" };
    const release = withholdHeaders(headers);
    expect(redact(Object.values(headers).join(" "))).toBe("[redacted] [redacted] eu-west-1 markdown");
    release();
    expect(redact(hex)).toBe(hex);
  });

  test("a header the operator calls plain is not withheld for its length, but still for a credential's shape", () => {
    const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl";
    const release = withholdHeaders({ "X-Region": "eu-west-1-zone-b", "X-Tenant": jwt, "X-Other": "0b6c3f2e-5d1a-4c1e" }, new Set(["x-region", "x-tenant"]));
    expect(redact(`eu-west-1-zone-b ${jwt} 0b6c3f2e-5d1a-4c1e`)).toBe("eu-west-1-zone-b [redacted] [redacted]");
    release();
  });

  test("a pass-through header carries a credential by any name the registry calls credential-like, or by a credential's shape", () => {
    const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl";
    const headers = { "X-Upstream-Id": jwt, "X-Hub-Signature": "sha256=f00dfeed0123", "X-Passphrase": "correct-horse-battery", "X-Upstream": "Basic dXNlcjpwYXNz", "X-Jwt-Assertion": "opaque-assertion-42", "X-Tenant": "tenant-acme" };
    const release = withholdHeaders(headers);
    expect(redact(Object.values(headers).join(" "))).toBe("[redacted] [redacted] [redacted] [redacted] [redacted] tenant-acme");
    release();
  });

  test("a result is cleaned of its session's credentials only, escaped ones and keys too, and left as it was when it holds none", () => {
    const forms = echoForms(["Bearer tok-0123456789", 'quote"back\\slash-secret']);
    const result = JSON.stringify({ content: [{ type: "text", text: "token tok-0123456789" }], structuredContent: { 'quote"back\\slash-secret': 'quote"back\\slash-secret', other: "withheld-elsewhere" } });
    withhold(["withheld-elsewhere"]);
    expect(JSON.parse(redactResult(result, forms))).toEqual({ content: [{ type: "text", text: "token [redacted]" }], structuredContent: { "[redacted]": "[redacted]", other: "withheld-elsewhere" } });
    const clean = JSON.stringify({ content: [{ type: "text", text: "nothing here" }] });
    expect(redactResult(clean, forms)).toBe(clean);
    expect(redactResult(result, [])).toBe(result);
  });
});
