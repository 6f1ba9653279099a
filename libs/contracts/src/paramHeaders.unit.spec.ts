import { describe, expect, test } from "vitest";
import { paramHeaderMismatch, paramHeadersOf, publishedInputSchema, unpublishedParamHeaders } from "./paramHeaders.js";

const declared = paramHeadersOf({
  type: "object",
  properties: {
    region: { type: "string", "x-mcp-header": "Region" },
    priority: { type: "integer", "x-mcp-header": "Priority" },
    options: { type: "object", properties: { dryRun: { type: "boolean", "x-mcp-header": "Dry-Run" } } },
  },
});
const check = (args: unknown, headers: Record<string, string>) => paramHeaderMismatch(declared, args, (name) => headers[name])?.reason ?? "agree";

describe("Mcp-Param-* headers against the body (basic/transports/streamable-http)", () => {
  test("agree: equal values, the Base64 sentinel decoded, numbers by value, undeclared or absent parameters need no header", () => {
    expect(check({ region: "eu", priority: 3, options: { dryRun: true } }, { "mcp-param-region": "eu", "mcp-param-priority": "3", "mcp-param-dry-run": "true" })).toBe("agree");
    expect(check({ region: " é " }, { "mcp-param-region": `=?base64?${Buffer.from(" é ").toString("base64")}?=` })).toBe("agree");
    expect(check({ priority: 42 }, { "mcp-param-priority": "42.0" })).toBe("agree");
    expect(check({ query: "anything" }, {})).toBe("agree");
    // A parameter the body does not carry (or carries as an object) needs no header; one sent anyway is ignored.
    expect(check({ region: null, options: "x" }, { "mcp-param-region": "us" })).toBe("agree");
  });

  test("disagree: a different value, a missing header, an undecodable sentinel", () => {
    expect(check({ region: "eu" }, { "mcp-param-region": "us" })).toContain("disagrees with arguments.region");
    expect(check({ region: "eu" }, {})).toContain("Mcp-Param-Region header is absent");
    expect(check({ options: { dryRun: false } }, { "mcp-param-dry-run": "true" })).toContain("arguments.options.dryRun");
    expect(check({ region: "eu" }, { "mcp-param-region": "=?base64?not base64!?=" })).toContain("invalid Base64");
    // "3" is not 3 for a string parameter: only numeric types compare by value.
    expect(check({ region: "3" }, { "mcp-param-region": "3.0" })).toContain("disagrees");
  });
});

describe("x-mcp-header annotations a 2026-07-28 client may not mirror (streamable-http, Schema Extension)", () => {
  const props = (properties: Record<string, unknown>) => ({ type: "object", properties });
  test("only valid declarations are demanded: a number, an object, a non-token, a case twin, one under items or at the root are not", () => {
    const schema = {
      ...props({
        n: { type: "number", "x-mcp-header": "N" },
        o: { type: "object", "x-mcp-header": "O" },
        s: { type: "string", "x-mcp-header": "Bad Name" },
        e: { type: "string", "x-mcp-header": "" },
        a: { type: "string", "x-mcp-header": "Tenant" },
        b: { type: "string", "x-mcp-header": "tenant" },
        rows: { type: "array", items: props({ id: { type: "string", "x-mcp-header": "Id" } }) },
        either: { anyOf: [{ type: "string", "x-mcp-header": "Either" }] },
        region: { type: "string", "x-mcp-header": "Region" },
        deep: props({ flag: { type: "boolean", "x-mcp-header": "Flag" } }),
      }),
      "x-mcp-header": "Root",
    };
    expect(paramHeadersOf(schema).map((d) => d.header).sort()).toEqual(["Mcp-Param-Flag", "Mcp-Param-Region"]);
    const published = publishedInputSchema(schema) as typeof schema;
    expect(published).not.toBe(schema);
    expect(JSON.stringify(published).match(/x-mcp-header/g)).toHaveLength(2);
    expect(published.properties.region).toEqual({ type: "string", "x-mcp-header": "Region" });
    expect(published.properties.n).toEqual({ type: "number" });
    // The pinned definition is left as the upstream reported it.
    expect(schema.properties.n).toEqual({ type: "number", "x-mcp-header": "N" });
  });

  test("what is left out is named for the operator: where, the name, and why, by path", () => {
    const schema = {
      ...props({
        n: { type: "number", "x-mcp-header": "N" },
        u: { type: ["string", "null"], "x-mcp-header": "U" },
        s: { type: "string", "x-mcp-header": "Bad Name" },
        k: { type: "string", "x-mcp-header": 5 },
        a: { type: "string", "x-mcp-header": "Tenant" },
        b: { type: "string", "x-mcp-header": "tenant" },
        rows: { type: "array", items: props({ id: { type: "string", "x-mcp-header": "Id" } }) },
        region: { type: "string", "x-mcp-header": "Region" },
      }),
      "x-mcp-header": "Root",
    };
    const mirrorable = " (only string, integer and boolean ones may be mirrored)";
    expect(unpublishedParamHeaders(schema)).toEqual([
      { path: "", header: "Root", reason: "on the schema itself, no parameter" },
      { path: "a", header: "Tenant", reason: "equal but for case to another parameter's" },
      { path: "b", header: "tenant", reason: "equal but for case to another parameter's" },
      { path: "k", reason: "not an HTTP header name (token)" },
      { path: "n", header: "N", reason: `on a parameter of type number${mirrorable}` },
      { path: "rows.id", header: "Id", reason: "not reached through properties alone (under items, anyOf, …)" },
      { path: "s", header: "Bad Name", reason: "not an HTTP header name (token)" },
      { path: "u", header: "U", reason: `on a parameter of type other than one name${mirrorable}` },
    ]);
    expect(unpublishedParamHeaders(props({ region: { type: "string", "x-mcp-header": "Region" } }))).toEqual([]);
  });

  test("attack: what the operator is shown of a hostile schema is bounded (16 annotations, names and paths cut short)", () => {
    const many = props(Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`p${String(i).padStart(4, "0")}${"x".repeat(300)}`, { type: "object", "x-mcp-header": "H".repeat(10_000) }])));
    const shown = unpublishedParamHeaders(many);
    expect(shown).toHaveLength(16);
    expect(shown[0]!.path).toBe(`p0000${"x".repeat(195)}…`);
    expect(shown[0]!.header).toBe(`${"H".repeat(64)}…`);
    // 16 × (a 201-character path, a 65-character name, a reason of under 100).
    expect(JSON.stringify(shown).length).toBeLessThan(8_000);
  });

  test("a schema with valid annotations only is published as it is", () => {
    const schema = props({ region: { type: "string", "x-mcp-header": "Region" }, q: { type: "integer", "x-mcp-header": "Q" } });
    expect(publishedInputSchema(schema)).toBe(schema);
    expect(paramHeadersOf(schema)).toHaveLength(2);
  });
});
