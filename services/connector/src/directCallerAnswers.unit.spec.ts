import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { DirectCaller } from "./directCaller.js";

const FIXTURE = fileURLToPath(new URL("../../../test/fixtures/largeSseAnswer.mjs", import.meta.url));
const LEGACY = { modern: false, sessionId: undefined, protocolVersion: undefined } as const;
const OPTIONS = { timeoutMs: 30_000, maxResultBytes: 64 * 1024 * 1024 };

/**
 * SSE answers read by the direct caller from a real upstream in a process of its own (64 KiB
 * pieces): a result is passed on as written where that reads the same, since writing a 4 MB one
 * again was the largest step of what one tenant's large answers cost a connector replica (what
 * that costs is measured in docs/operations.md, not timed here).
 */
describe("DirectCaller reading SSE answers", () => {
  let upstream: ChildProcess;
  let pool: Pool;
  let caller: DirectCaller;

  beforeAll(async () => {
    upstream = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"] });
    const [line] = (await once(upstream.stdout!, "data")) as [Buffer];
    const url = new URL(String(line).trim());
    pool = new Pool(url.origin);
    caller = new DirectCaller(pool, url, {}, LEGACY);
  });
  afterAll(async () => {
    await pool?.close();
    upstream?.kill();
  });

  const call = (args: { bytes?: number; raw?: string }) => caller.callTool("big", JSON.stringify({ name: "big", arguments: args }), OPTIONS);

  test("an answer's result is passed on as the upstream wrote it, not parsed and written again", async () => {
    const raw = '{"jsonrpc": "2.0", "id": __ID__, "result": {"content": [{"type": "text", "text": "a \\"quoted\\"\\nline\\t\\\\"}], "n": 1.50}}';
    const text = await call({ raw });
    expect(text).toBe('{"content": [{"type": "text", "text": "a \\"quoted\\"\\nline\\t\\\\"}], "n": 1.50}');
    expect(JSON.parse(text)).toEqual({ content: [{ type: "text", text: 'a "quoted"\nline\t\\' }], n: 1.5 });
  });

  test("a result JSON.stringify would write otherwise (\\u escapes, an escaped key) is written again, as JSON.parse reads it", async () => {
    // `\u0073`: redaction looks for credentials in the text, so an escape that hides one is written out.
    expect(await call({ raw: '{"jsonrpc":"2.0","id":__ID__,"result":{"content":[{"type":"text","text":"\\u0073ecret\\/"}]}}' })).toBe(
      '{"content":[{"type":"text","text":"secret/"}]}',
    );
    // A later member of the same name is the one JSON.parse keeps, escaped or not.
    // (Each a tool result: one that is none is refused, callResultShape.ts.)
    expect(await call({ raw: '{"jsonrpc":"2.0","result":{"a":1},"id":__ID__,"result" : {"content":[],"b":[2,{"c":"}"}]}}' })).toBe('{"content":[],"b":[2,{"c":"}"}]}');
    expect(await call({ raw: '{"jsonrpc":"2.0","id":__ID__,"result":{"a":1},"res\\u0075lt":{"content":[],"b":2}}' })).toBe('{"content":[],"b":2}');
  });
});
