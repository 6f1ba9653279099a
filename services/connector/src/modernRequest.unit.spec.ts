import { describe, expect, test } from "vitest";
import { paramHeadersOf } from "@manifold/contracts";
import { envelopeMembers, headerValue, judgedResult, neutralResult, paramHeaderValues, withMeta, withoutUpstreamInfo } from "./modernRequest.js";

const ENVELOPE = envelopeMembers("2026-07-28");

describe("a 2026-07-28 request's envelope", () => {
  test("carries the protocol version, client info and capabilities", () => {
    expect(JSON.parse(`{${ENVELOPE}}`)).toEqual({
      "io.modelcontextprotocol/protocolVersion": "2026-07-28",
      "io.modelcontextprotocol/clientInfo": { name: "manifold-connector", version: "0.1.0" },
      "io.modelcontextprotocol/clientCapabilities": {},
    });
  });

  test.each([
    ['{"name":"echo","arguments":{"m":1}}', { name: "echo", arguments: { m: 1 } }],
    ["{}", {}],
    [' { "name" : "x" }', { name: "x" }],
  ])("is spliced into params without a _meta of their own: %s", (params, rest) => {
    const merged = JSON.parse(withMeta(params, `${ENVELOPE},"progressToken":"m1"`));
    expect(merged).toEqual({ ...rest, _meta: { ...JSON.parse(`{${ENVELOPE}}`), progressToken: "m1" } });
  });

  test("is merged with the caller's _meta, ours winning on the same key", () => {
    const params = JSON.stringify({ name: "echo", _meta: { traceparent: "00-abc-def-01", "io.modelcontextprotocol/protocolVersion": "1999-01-01", progressToken: 7 } });
    const merged = JSON.parse(withMeta(params, `${ENVELOPE},"progressToken":"m2"`));
    expect(merged._meta).toMatchObject({ traceparent: "00-abc-def-01", "io.modelcontextprotocol/protocolVersion": "2026-07-28", progressToken: "m2" });
    expect(merged.name).toBe("echo");
  });
});

describe("Mcp-Name header values (Value Encoding)", () => {
  test.each([
    ["get_weather", "get_weather"],
    ["a b", "a b"],
    ["Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?="],
    [" padded ", "=?base64?IHBhZGRlZCA=?="],
    ["line1\nline2", "=?base64?bGluZTEKbGluZTI=?="],
    ["=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="],
    ["", "=?base64??="],
  ])("%j is sent as %j", (value, header) => {
    expect(headerValue(value)).toBe(header);
  });
});

describe("parameters mirrored into Mcp-Param-* headers (x-mcp-header)", () => {
  const schema = {
    type: "object",
    properties: {
      region: { type: "string", "x-mcp-header": "Region" },
      retries: { type: "integer", "x-mcp-header": "Retries" },
      options: { type: "object", properties: { dryRun: { type: "boolean", "x-mcp-header": "Dry-Run" } } },
      query: { type: "string" },
    },
  };

  test("are found on properties reached through `properties`, at any depth", () => {
    expect(paramHeadersOf(schema)).toEqual(
      expect.arrayContaining([
        { path: ["region"], header: "Mcp-Param-Region", type: "string" },
        { path: ["retries"], header: "Mcp-Param-Retries", type: "integer" },
        { path: ["options", "dryRun"], header: "Mcp-Param-Dry-Run", type: "boolean" },
      ]),
    );
    expect(paramHeadersOf(schema)).toHaveLength(3);
    expect(paramHeadersOf({ type: "object", properties: { q: { type: "string" } } })).toEqual([]);
    expect(paramHeadersOf(undefined)).toEqual([]);
  });

  test("carry strings, safe integers and booleans (lowercase), encoded like Mcp-Name; absent or unusable values send nothing", () => {
    const declared = paramHeadersOf(schema);
    expect(paramHeaderValues(declared, { region: "us-west1", retries: -7, options: { dryRun: true } })).toEqual({
      "Mcp-Param-Region": "us-west1",
      "Mcp-Param-Retries": "-7",
      "Mcp-Param-Dry-Run": "true",
    });
    expect(paramHeaderValues(declared, { region: " padded ", retries: 1.5 })).toEqual({ "Mcp-Param-Region": "=?base64?IHBhZGRlZCA=?=" });
    expect(paramHeaderValues(declared, { region: { not: "a primitive" }, retries: 2 ** 60, options: "x" })).toEqual({});
    expect(paramHeaderValues(declared, undefined)).toEqual({});
  });
});

describe("a 2026-07-28 result, as the bus carries it", () => {
  const SERVER_INFO = "io.modelcontextprotocol/serverInfo";
  const content = [{ type: "text", text: "hi" }];

  test("loses the upstream's resultType and serverInfo, as an SDK 2.x server writes them", () => {
    expect(neutralResult({ content, resultType: "complete", _meta: { [SERVER_INFO]: { name: "up", version: "1" } } })).toEqual({ content });
    expect(neutralResult({ resultType: "complete", content })).toEqual({ content });
  });

  test("keeps the rest of its _meta, and a _meta that is not an object as it is", () => {
    expect(neutralResult({ content, resultType: "complete", _meta: { [SERVER_INFO]: { name: "up" }, "example.com/trace": "t" } })).toEqual({ content, _meta: { "example.com/trace": "t" } });
    expect(neutralResult({ content, resultType: "complete", _meta: "odd" })).toEqual({ content, _meta: "odd" });
  });

  test("loses the upstream's serverInfo also where the SDK client already dropped resultType", () => {
    expect(neutralResult({ content, _meta: { [SERVER_INFO]: { name: "up" } } })).toEqual({ content });
    const plain = { content, _meta: { "example.com/trace": "t" } };
    expect(neutralResult(plain)).toBe(plain);
  });

  test("is left whole when it is not complete (a task, a round of questions) or not a result", () => {
    const task = { resultType: "task", taskId: "t1", _meta: { [SERVER_INFO]: { name: "up" } } };
    expect(neutralResult(task)).toBe(task);
    expect(neutralResult([1])).toEqual([1]);
    expect(neutralResult(null)).toBeNull();
  });

  test("a task's _meta keeps everything but the upstream's serverInfo", () => {
    expect(withoutUpstreamInfo({ [SERVER_INFO]: { name: "up" } })).toBeUndefined();
    expect(withoutUpstreamInfo({ [SERVER_INFO]: { name: "up" }, "io.modelcontextprotocol/related-task": { taskId: "t" } })).toEqual({ "io.modelcontextprotocol/related-task": { taskId: "t" } });
    expect(withoutUpstreamInfo("odd")).toBe("odd");
  });
});

describe("judgedResult", () => {
  const content = [{ type: "text", text: "x" }];
  test("a 2026-07-28 result: complete (or none), or a task only where the request declared the extension", () => {
    expect(judgedResult({ content, resultType: "complete" }, true, false)).toEqual({ content });
    expect(judgedResult({ content }, true, false)).toEqual({ content });
    expect(judgedResult({ resultType: "task", taskId: "t" }, true, true)).toEqual({ resultType: "task", taskId: "t" });
    for (const [resultType, tasks] of [["task", false], ["weird", true], ["", false], [1, true]] as const) {
      expect(() => judgedResult({ content, resultType }, true, tasks)).toThrow(expect.objectContaining({ code: "upstream_error", data: { reason: "invalid_result" } }));
    }
  });
  test("a 2025 result has no resultType: a stray one is dropped", () => {
    const result = { content };
    expect(judgedResult(result, false, false)).toBe(result);
    expect(judgedResult({ content, resultType: "task", taskId: "t" }, false, true)).toEqual({ content, taskId: "t" });
  });
});
