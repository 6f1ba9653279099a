import { holdsNonFiniteNumber } from "@manifold/contracts";
import { Client, InMemoryTransport, ProtocolError, SdkError, SdkErrorCode, type JSONRPCMessage } from "@modelcontextprotocol/client";
import { describe, expect, test } from "vitest";
import { holdFiniteNumbers } from "./finiteNumbers.js";
import { mapUpstreamError } from "./upstreamErrors.js";

type Message = Record<string, unknown>;
const INITIALIZED = { protocolVersion: "2025-11-25", capabilities: { tools: {} }, serverInfo: { name: "numbers", version: "1" } };

/**
 * A real 2.4.0 client on an in-memory transport, connected (2025) to a hand-written server: what
 * the server answers is given per method as objects, so a number no JSON text can carry through
 * `JSON.stringify` (Infinity, what `JSON.parse` makes of 1e400) reaches the client as it would
 * from a parsed line. `sent` holds what the client sent the server after the handshake.
 */
async function connected(answers: Record<string, (request: Message) => Message>, initialize: Message = INITIALIZED) {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const sent: Message[] = [];
  serverSide.onmessage = (message) => {
    const m = message as Message;
    if (m.method === "initialize") return void serverSide.send({ jsonrpc: "2.0", id: m.id, result: initialize } as JSONRPCMessage);
    if (m.method === "notifications/initialized") return;
    sent.push(m);
    const answer = typeof m.method === "string" ? answers[m.method] : undefined;
    if (answer && m.id !== undefined) void serverSide.send({ jsonrpc: "2.0", id: m.id, ...answer(m) } as JSONRPCMessage);
  };
  await serverSide.start();
  const client = new Client({ name: "connector", version: "1" }, { capabilities: { elicitation: { form: {} } } });
  await client.connect(clientSide, { prior: { kind: "legacy" } });
  holdFiniteNumbers(clientSide, "upstream 'u'");
  const upstreamSends = (message: Message) => serverSide.send(message as JSONRPCMessage);
  return { client, sent, upstreamSends };
}

const failure = (request: Promise<unknown>) => request.then((answered) => ({ answered }), (error: unknown) => error);

describe("holdFiniteNumbers: an upstream's message holding a number no double can hold, on the SDK client's lane", () => {
  test("attack: a list answer holding one fails its request as the upstream's invalid result naming the path, never the value", async () => {
    const { client } = await connected({ "tools/list": () => ({ result: { tools: [{ name: "a", inputSchema: { type: "object", "x-limit": Infinity } }] } }) });
    const error = await failure(client.listTools());
    expect(error).toBeInstanceOf(ProtocolError);
    const mapped = mapUpstreamError(error, "upstream 'u'", 1_000);
    expect(mapped).toMatchObject({ code: "upstream_error", data: { reason: "invalid_result", path: "/result/tools/0/inputSchema/x-limit" } });
    expect(mapped.message).toBe("upstream 'u' returned a JSON-RPC answer holding a number no double can hold (read as Infinity) at '/result/tools/0/inputSchema/x-limit'");
    // Unguarded, the client handed on `"x-limit": Infinity`, which JSON.stringify writes as null.
    await client.close();
  });

  test("a JSON-RPC error holding one is refused the same way; an upstream's own error shaped like the refusal is its own error", async () => {
    const { client } = await connected({
      "prompts/get": () => ({ error: { code: -32000, message: "m", data: { why: [-Infinity] } } }),
      "resources/read": () => ({ error: { code: -32603, message: "forged", data: { path: "/result/x" } } }),
    });
    const refused = mapUpstreamError(await failure(client.getPrompt({ name: "p" })), "upstream 'u'", 1_000);
    expect(refused).toMatchObject({ code: "upstream_error", data: { reason: "invalid_result", path: "/error/data/why/0" } });
    const forged = mapUpstreamError(await failure(client.readResource({ uri: "x://y" })), "upstream 'u'", 1_000);
    expect(forged).toMatchObject({ code: "upstream_error", data: { upstreamCode: -32603 } });
    expect(forged.data).not.toHaveProperty("reason");
    await client.close();
  });

  test("finite answers pass as they came: the largest double, and an integer past 2^53 as JSON.parse rounded it", async () => {
    const meta = { max: Number.MAX_VALUE, big: 12345678901234567000, tiny: -Number.MIN_VALUE };
    const { client } = await connected({ "completion/complete": () => ({ result: { _meta: meta, completion: { values: ["a"], total: 1 } } }) });
    expect((await client.complete({ ref: { type: "ref/prompt", name: "p" }, argument: { name: "a", value: "" } }))._meta).toEqual(meta);
    await client.close();
  });

  test("attack: a request holding one is answered -32600 naming the path, and never reaches the client's handler", async () => {
    const { client, sent, upstreamSends } = await connected({});
    let asked = 0;
    client.setRequestHandler("elicitation/create", () => (asked++, { action: "decline" as const }));
    await upstreamSends({ jsonrpc: "2.0", id: "q1", method: "elicitation/create", params: { message: "m", requestedSchema: { type: "object", properties: { n: { type: "number", maximum: Infinity } } } } });
    await new Promise((resolve) => setImmediate(resolve));
    expect(asked).toBe(0);
    expect(sent).toEqual([{ jsonrpc: "2.0", id: "q1", error: { code: -32600, message: "the request holds a number no double can hold (read as Infinity) at '/params/requestedSchema/properties/n/maximum'" } }]);
    // A finite one is the client's to answer, as before.
    await upstreamSends({ jsonrpc: "2.0", id: "q2", method: "elicitation/create", params: { message: "m", requestedSchema: { type: "object", properties: { n: { type: "number", maximum: 3 } } } } });
    await new Promise((resolve) => setImmediate(resolve));
    expect(asked).toBe(1);
    expect(sent.at(-1)).toMatchObject({ id: "q2", result: { action: "decline" } });
    await client.close();
  });

  test("a notification holding one is dropped; a finite one is delivered", async () => {
    const { client, upstreamSends } = await connected({});
    const logged: unknown[] = [];
    client.setNotificationHandler("notifications/message", (n) => void logged.push(n.params.data));
    await upstreamSends({ jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data: { n: Infinity } } });
    await upstreamSends({ jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data: { n: 1 } } });
    await new Promise((resolve) => setImmediate(resolve));
    expect(logged).toEqual([{ n: 1 }]);
    await client.close();
  });
});

/**
 * The handshake is read before `holdFiniteNumbers` is installed: the 2.4.0 client's own schema is
 * what keeps such numbers out of the server info and capabilities the connector reports. Should a
 * later client keep them, these fail, and the handshake needs a check of its own.
 */
describe("the SDK client's handshake holds no number no double can hold (pinned)", () => {
  test("unknown members of serverInfo and capabilities holding one are dropped", async () => {
    const { client } = await connected({}, { ...INITIALIZED, capabilities: { tools: { n: Infinity } }, serverInfo: { name: "x", version: "1", n: Infinity, _meta: { n: Infinity } } });
    expect(holdsNonFiniteNumber({ info: client.getServerVersion(), capabilities: client.getServerCapabilities() })).toBe(false);
    await client.close();
  });

  test("one in a JSON-valued capability (experimental) fails the handshake as an invalid result", async () => {
    const error = await failure(connected({}, { ...INITIALIZED, capabilities: { experimental: { x: { n: Infinity } } } }));
    expect(error).toBeInstanceOf(SdkError);
    expect((error as SdkError).code).toBe(SdkErrorCode.InvalidResult);
  });
});
