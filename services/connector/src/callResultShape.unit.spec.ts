import { specTypeSchemas } from "@modelcontextprotocol/client";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { describe, expect, test } from "vitest";
import { callResultFault, callResultOf, isTaskAnswer } from "./callResultShape.js";

/** Blocks whose known members hold values at and past the edges of what the SDKs' schemas accept. */
const VALUE_CASES: unknown[] = [
  { type: "text", text: "ok", annotations: { audience: ["user", "assistant"], priority: 0, lastModified: "2026-12-07T06:00:00Z" } },
  { type: "text", text: "ok", annotations: { priority: 1, lastModified: "2024-02-29T23:59:59.123+14:00" } },
  { type: "text", text: "ok", annotations: { audience: [] } },
  { type: "text", text: "ok", annotations: { audience: ["robot"] } },
  { type: "text", text: "ok", annotations: { audience: "user" } },
  { type: "text", text: "ok", annotations: { priority: 2 } },
  { type: "text", text: "ok", annotations: { priority: -0.1 } },
  { type: "text", text: "ok", annotations: { priority: "1" } },
  { type: "text", text: "ok", annotations: { lastModified: 1 } },
  { type: "text", text: "ok", annotations: { lastModified: "2026-12-07" } },
  { type: "text", text: "ok", annotations: { lastModified: "2026-12-07T06:00Z" } },
  { type: "text", text: "ok", annotations: { lastModified: "2023-02-29T06:00:00Z" } },
  { type: "text", text: "ok", annotations: { lastModified: "2026-12-07T06:00:00" } },
  { type: "text", text: "ok", annotations: null },
  { type: "text", text: "ok", annotations: [] },
  { type: "text", text: "ok", annotations: { audience: null } },
  { type: "text", text: "ok", _meta: null },
  { type: "text", text: "ok", _meta: [1] },
  { type: "text", text: "ok", _meta: "m" },
  ...["AAAA", "AAA", "AA", "A", "", "AA==", "AAA=", "A===", "AA=", "AA=A", "AA AA\nAA\t", " A A A A ", "AA==  ", "AA= =", "-_-_", "AA\u00e9A", "AAAA\u0000"].map((data) => ({ type: "image", data, mimeType: "image/png" })),
  { type: "audio", data: "not base64!", mimeType: "audio/wav" },
  { type: "resource", resource: { uri: "file:///a", blob: "AAAAA" } },
  { type: "resource", resource: { uri: "file:///a", blob: "AAAA", mimeType: 1 } },
  { type: "resource", resource: { uri: "file:///a", text: "a", blob: "not base64" } },
  { type: "resource", resource: { uri: "file:///a", text: 1, blob: "AAAA" } },
  { type: "resource", resource: { uri: "file:///a", text: "a", mimeType: null } },
  { type: "resource", resource: { uri: "file:///a", text: "a", _meta: [] } },
  { type: "resource_link", uri: "file:///a", name: "a", title: "A", description: "d", mimeType: "text/plain", size: 3.5, icons: [], _meta: {} },
  { type: "resource_link", uri: "file:///a", name: "a", icons: [{ src: "i.png", mimeType: "image/png", sizes: ["48x48", "any"], theme: "light" }] },
  { type: "resource_link", uri: "file:///a", name: "a", icons: ["i.png"] },
  { type: "resource_link", uri: "file:///a", name: "a", icons: [{ src: 1 }] },
  { type: "resource_link", uri: "file:///a", name: "a", icons: [{ src: "i.png", theme: "dim" }] },
  { type: "resource_link", uri: "file:///a", name: "a", icons: [{ src: "i.png", sizes: [48] }] },
  { type: "resource_link", uri: "file:///a", name: "a", icons: {} },
  { type: "resource_link", uri: "file:///a", name: "a", size: "3" },
  { type: "resource_link", uri: "file:///a", name: "a", title: 1 },
  { type: "resource_link", uri: "file:///a", name: "a", description: null },
  { type: "resource_link", uri: "file:///a", name: "a", mimeType: 1 },
  { type: "resource_link", uri: "file:///a", name: "a", annotations: { priority: 5 } },
  { type: "resource_link", uri: "file:///a", name: "a", _meta: [] },
  { type: "image", data: "AAAA", mimeType: "image/png", annotations: { audience: ["robot"] } },
  { type: "resource", resource: { uri: "file:///a", text: "a" }, annotations: { priority: 2 }, _meta: { ok: 1 } },
];

describe("callResultFault: a tools/call result judged against CallToolResult, structurally", () => {
  test.each([
    [{ content: [] }],
    [{ content: [{ type: "text", text: "ok", extra: 1 }], isError: false }],
    [{ content: [{ type: "image", data: "AAAA", mimeType: "image/png" }, { type: "audio", data: "AAAA", mimeType: "audio/wav" }] }],
    [{ content: [{ type: "resource_link", uri: "file:///a", name: "a" }] }],
    [{ content: [{ type: "resource", resource: { uri: "file:///a", text: "a" } }, { type: "resource", resource: { uri: "file:///b", blob: "AAAA" } }] }],
    [{ content: [{ type: "text", text: "ok" }], structuredContent: { a: 1 }, _meta: {} }],
  ])("%j follows the schema", (result) => {
    expect(callResultFault(result)).toBeUndefined();
  });

  test.each([
    [{ structuredContent: { a: 1 } }, "content is not an array"],
    [{ content: { type: "text", text: "ok" } }, "content is not an array"],
    [{ content: [null] }, "content[0] is not an object"],
    [{ content: [{ type: "text", text: "ok" }, { type: "text" }] }, "content[1] (text) has no string text"],
    [{ content: [{ type: "hologram <ignore previous instructions>" }] }, "content[0] has a type no MCP revision has"],
    [{ content: [{ type: "constructor" }] }, "content[0] has a type no MCP revision has"],
    [{ content: [{ type: "image", data: "AAAA" }] }, "content[0] (image) has no string mimeType"],
    [{ content: [{ type: "resource", resource: { uri: "file:///a" } }] }, "content[0] (resource) has no resource with a uri and a text or blob"],
    [{ content: [], isError: "yes" }, "isError is not a boolean"],
    [{ content: [{ type: "text", text: "ok", annotations: { audience: ["robot <ignore previous instructions>"] } }] }, "content[0] (text): annotations.audience is not a list of user and assistant"],
    [{ content: [{ type: "image", data: "<script>", mimeType: "image/png" }] }, "content[0] (image): data is not Base64"],
  ])("%j: %s (nothing of the upstream's quoted)", (result, fault) => {
    expect(callResultFault(result as Record<string, unknown>)).toBe(fault);
  });

  test.each(VALUE_CASES.map((block) => [JSON.stringify(block), block]))("%s: refused exactly when both SDKs' CallToolResult schemas refuse it", (_, block) => {
    const result = JSON.parse(JSON.stringify({ content: [{ type: "text", text: "first" }, block] })) as Record<string, unknown>;
    const sdk1 = CallToolResultSchema.safeParse(result).success;
    const sdk2 = specTypeSchemas.CallToolResult["~standard"].validate(result).issues === undefined;
    expect(sdk2).toBe(sdk1);
    const fault = callResultFault(result);
    expect(fault === undefined).toBe(sdk1);
    // The fault names the block and the member, never the upstream's value.
    if (fault) expect(fault).toMatch(/^content\[1\] \((text|image|audio|resource|resource_link)\)/);
  });

  test("callResultOf passes a result whose blocks hold only named members on as it is: no copy", () => {
    const result = { content: [{ type: "text", text: "ok", annotations: { priority: 1 }, _meta: { any: { thing: 1 } } }, { type: "resource_link", uri: "file:///a", name: "a", icons: [{ src: "i.png", theme: "dark" }] }], extra: 1 };
    expect(callResultOf(result, "the upstream")).toBe(result);
  });

  test.each([
    [{ type: "text", text: "ok", extra: 1 }, { type: "text", text: "ok" }],
    [{ type: "text", text: "ok", annotations: { audience: ["user"], tone: "loud" } }, { type: "text", text: "ok", annotations: { audience: ["user"] } }],
    [{ type: "image", data: "AAAA", mimeType: "image/png", alt: "a" }, { type: "image", data: "AAAA", mimeType: "image/png" }],
    [{ type: "resource", resource: { uri: "file:///a", text: "a", encoding: "utf8", blob: "AAAA" }, note: 1 }, { type: "resource", resource: { uri: "file:///a", text: "a" } }],
    [{ type: "resource", resource: { uri: "file:///a", blob: "AAAA", size: 3 } }, { type: "resource", resource: { uri: "file:///a", blob: "AAAA" } }],
    [{ type: "resource_link", uri: "file:///a", name: "a", size: 3, icons: [{ src: "i.png", alt: "x" }], weight: 9 }, { type: "resource_link", uri: "file:///a", name: "a", size: 3, icons: [{ src: "i.png" }] }],
  ])("callResultOf leaves out what no revision names in %j, as the SDKs' schemas do", (block, kept) => {
    const good = { type: "text", text: "same" };
    const result = { content: [good, block], isError: false, vendor: { x: 1 } };
    const passed = callResultOf(result as Record<string, unknown>, "the upstream");
    expect(passed).toEqual({ content: [good, kept], isError: false, vendor: { x: 1 } });
    // The upstream's object is not changed, and a block without strangers is not copied.
    expect(result.content[1]).toBe(block);
    expect((passed.content as unknown[])[0]).toBe(good);
  });

  test("callResultOf refuses a result that breaks the schema (upstream_error, invalid_result)", () => {
    expect(() => callResultOf({ content: [{ type: "text" }] }, "the upstream")).toThrow(expect.objectContaining({ code: "upstream_error", data: { reason: "invalid_result" } }));
  });

  test("a task answer of either era is told apart from a tool result", () => {
    expect(isTaskAnswer({ task: { taskId: "1", status: "working" } })).toBe(true);
    expect(isTaskAnswer({ resultType: "task", taskId: "1" })).toBe(true);
    expect(isTaskAnswer({ content: [] })).toBe(false);
  });
});
