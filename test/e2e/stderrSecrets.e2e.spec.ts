import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { registerUpstreams } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// Many servers print their configuration at start. One that prints the variable Manifold resolved
// from `secretEnv` for it put the secret in the connector's log (the stderr line was logged as it
// was). The connector knows every value it resolved for that process, and withholds them.

const HOSTILE = new URL("../fixtures/hostileStdio.mjs", import.meta.url).pathname;
const SECRET = "s3cr3t-stdio-value-5b9e1f0c7a";

let nats: NatsServer;
let stack: Stack;
const logs: string[] = [];

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url, {}, { secretsEnv: { MANIFOLD_SECRET_STDIO_API: SECRET }, logs });
  await registerUpstreams(stack, {
    name: "chatty",
    transport: { type: "stdio", command: process.execPath, args: [HOSTILE], env: { ECHO_ENV: "API_TOKEN" }, secretEnv: { API_TOKEN: "env:MANIFOLD_SECRET_STDIO_API" }, protocol: "2025" },
  });
});

afterAll(async () => {
  await stack?.close();
  await nats?.stop();
});

test("attack: a secret a stdio upstream was given never reaches the connector's log, even when the upstream prints it on stderr", async () => {
  // The upstream's start-up line is logged (stderr is kept), without the value.
  const line = await eventually(() => logs.find((l) => l.includes('"stream":"stderr"') && l.includes("debug: API_TOKEN=")), 10_000);
  expect((JSON.parse(line) as { msg: string }).msg).toBe("debug: API_TOKEN=[redacted]");
  expect(logs.filter((l) => l.includes(SECRET))).toEqual([]);
});
