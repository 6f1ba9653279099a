import { serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { busEnv, startNats, startStack, type Stack } from "../helpers/stack.js";
import { spawnEverything, TEST_STDIO_COMMANDS, type SpawnedUpstream } from "../helpers/upstreams.js";

const MODERN_FIXTURE = new URL("../fixtures/modern-upstream.mjs", import.meta.url).pathname;
const STDIO_FIXTURE = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;
/** Past undici's own per-signal limit (1,500 listeners) with room to spare. */
const CALLS = 2_500;
const CLIENTS = 8;

/**
 * A long-lived connector (its own process, as in production) serving thousands of calls through
 * the SDK client (stdio of both eras, SSE): nothing may accumulate per call. The 2.x client's
 * transports hand their long-lived abort signal to `fetch`, which adds one listener per request
 * until garbage collection. The connector runs with a young generation large enough that no
 * collection happens during the run, so whatever is added per call stays: past undici's limit
 * (1,500 per signal) Node warns, and the warning is in the connector's log.
 */
describe("a long-lived connector over the SDK client's transports", () => {
  let nats: NatsServer;
  let stack: Stack;
  let sse: SpawnedUpstream;
  let connector: ServiceProcess;
  let dir: string;
  let names: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), "manifold-longrun-"));
    [stack, sse] = await Promise.all([startStack(nats.url, {}, { connector: false }), spawnEverything("sse")]);
    const port = await freePort();
    connector = spawnService(
      "connector",
      serviceEntry("connector"),
      [],
      { ...busEnv(nats, "connector"), CONNECTOR_PORT: String(port), LOG_LEVEL: "warn", MANIFOLD_STDIO_COMMANDS: TEST_STDIO_COMMANDS },
      join(dir, "connector.log"),
      ["--min-semi-space-size=64", "--max-semi-space-size=64"],
    );
    await connector.ready(`http://127.0.0.1:${port}/readyz`);
    await registerUpstreams(
      stack,
      { name: "modern-stdio", transport: { type: "stdio", command: process.execPath, args: [MODERN_FIXTURE, "stdio"] } },
      { name: "legacy-stdio", transport: { type: "stdio", command: process.execPath, args: [STDIO_FIXTURE] } },
      { name: "legacy-sse", transport: { type: "sse", url: sse.url } },
    );
    names = await createVirtualServer(stack, "longrun", [
      { upstream: "modern-stdio", tool: "echo" },
      { upstream: "legacy-stdio", tool: "echo" },
      { upstream: "legacy-sse", tool: "echo" },
    ]);
  });

  afterAll(async () => {
    await connector?.stop();
    await stack?.close();
    await sse?.stop();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test.each(["modern-stdio/echo", "legacy-stdio/echo", "legacy-sse/echo"])(
    `${CALLS} calls to %s leave no listener behind (no MaxListenersExceededWarning)`,
    async (key) => {
      const clients = await Promise.all(Array.from({ length: CLIENTS }, () => connectHttp(stack.mcpUrl("longrun"))));
      const run = async (calls: number) => {
        let left = calls;
        await Promise.all(
          clients.map(async (client) => {
            while (left-- > 0) {
              const result = await client.callTool({ name: names[key]!, arguments: { message: "x" } });
              expect(result.isError).toBeFalsy();
            }
          }),
        );
      };
      const logged = (await readFile(join(dir, "connector.log"), "utf8")).length;
      await run(CALLS);
      await Promise.all(clients.map((c) => c.close()));
      const log = (await readFile(join(dir, "connector.log"), "utf8")).slice(logged);
      expect(log).not.toContain("MaxListenersExceededWarning");
    },
    120_000,
  );
});
