import type { NatsServer } from "@manifold/nats-server";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { appendRecorded } from "../helpers/recordedEvents.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// Many servers print their configuration at start. One that prints the variable Manifold resolved
// from `secretEnv` for it put the secret in the connector's log (the stderr line was logged as it
// was). The connector knows every value it resolved for that process, and withholds them.

const HOSTILE = new URL("../fixtures/hostileStdio.mjs", import.meta.url).pathname;
const FIXTURE = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;
const SECRET = "s3cr3t-stdio-value-5b9e1f0c7a";
/** A literal secret a registration recorded before the registry refused it (a credential-named variable). */
const RECORDED = `recorded-${randomBytes(16).toString("hex")}`;
/** A private key as a `file:` reference holds it (GitHub App servers take one): one value of several lines. */
const KEY_LINES = [0, 1, 2].map(() => randomBytes(48).toString("base64"));
const PEM = ["-----BEGIN PRIVATE KEY-----", ...KEY_LINES, "-----END PRIVATE KEY-----"].join("\n");
/** A value the stderr line's cut falls inside: its first characters are before the cut, the rest after. */
const STRADDLING = `cut${randomBytes(16).toString("hex")}`;
const ECHO_PREFIX = "debug: API_TOKEN=";
const BEFORE_CUT = 12;
/** Where the connector cuts a stderr line (`STDERR_LINE_MAX` in services/connector/src/stderrLog.ts). */
const STDERR_LINE_MAX = 8 * 1024;

let nats: NatsServer;
let stack: Stack;
const logs: string[] = [];

const chatty = (name: string, secret: string, as?: string) => ({
  name,
  transport: {
    type: "stdio",
    command: process.execPath,
    args: [HOSTILE],
    env: { ECHO_ENV: "API_TOKEN", ...(as === undefined ? {} : { ECHO_ENV_AS: as }) },
    secretEnv: { API_TOKEN: `env:${secret}` },
    protocol: "2025",
  },
});

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(
    nats.url,
    {},
    { secretsEnv: { MANIFOLD_SECRET_STDIO_API: SECRET, MANIFOLD_SECRET_STDIO_PEM: PEM, MANIFOLD_SECRET_STDIO_CUT: STRADDLING }, logs },
  );
  await registerUpstreams(
    stack,
    chatty("chatty", "MANIFOLD_SECRET_STDIO_API"),
    chatty("pem-raw", "MANIFOLD_SECRET_STDIO_PEM"),
    chatty("pem-json", "MANIFOLD_SECRET_STDIO_PEM", "json"),
    chatty("cut", "MANIFOLD_SECRET_STDIO_CUT", String(STDERR_LINE_MAX - BEFORE_CUT - ECHO_PREFIX.length)),
    {
      name: "keyed",
      transport: { type: "stdio", command: process.execPath, args: [FIXTURE], env: { ENV_LINES: "1" }, secretEnv: { PRIVATE_KEY: "env:MANIFOLD_SECRET_STDIO_PEM" }, protocol: "2025" },
    },
  );
  await appendRecorded(nats, "recorded", { type: "stdio", command: process.execPath, args: [HOSTILE], env: { ECHO_ENV: "RECORDED_TOKEN", RECORDED_TOKEN: RECORDED }, secretEnv: {}, protocol: "2025" });
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

test("attack: a secret of several lines (a private key), printed as it is or in a structured log line, and one the line's cut falls inside, never reach the log in part", async () => {
  const stderr = () => logs.filter((l) => l.includes('"stream":"stderr"'));
  // Every upstream's lines are in: one from `chatty`, the key's five printed raw, the structured line, the cut line.
  await eventually(() => (stderr().length >= 8 ? true : undefined), 10_000);
  const fragments = [...KEY_LINES, STRADDLING.slice(0, BEFORE_CUT)];
  const leaked = fragments.filter((fragment) => stderr().some((l) => l.includes(fragment)));
  expect(leaked, `${leaked.length} of ${fragments.length} fragments in the log`).toEqual([]);
});

test("attack: one line of a key of several lines, quoted in an upstream's error, never reaches the agent", async () => {
  const names = await createVirtualServer(stack, "keyed", [{ upstream: "keyed", tool: "env-line" }]);
  await using agent = await connectHttp(stack.mcpUrl("keyed"));
  const errors = [];
  for (const line of [1, 2, 3]) errors.push(await rpcError(agent.callTool({ name: names["keyed/env-line"]!, arguments: { name: "PRIVATE_KEY", line } })));
  // The upstream did quote a line each time; the agent hears its error without it.
  expect(errors.map((e) => e.message.includes("cannot parse line"))).toEqual([true, true, true]);
  const text = JSON.stringify(errors);
  const leaked = KEY_LINES.filter((line) => text.includes(line));
  expect(leaked, `${leaked.length} of ${KEY_LINES.length} key lines in the agent's errors`).toEqual([]);
});

test("attack: a literal secret a registration recorded before the registry refused it never reaches the log, though the upstream prints it", async () => {
  // Before, the connector blanked only what it resolved from references: the line was logged whole.
  const line = await eventually(() => logs.find((l) => l.includes('"stream":"stderr"') && l.includes("debug: RECORDED_TOKEN=")), 10_000);
  expect((JSON.parse(line) as { msg: string }).msg).toBe("debug: RECORDED_TOKEN=[redacted]");
  expect(logs.filter((l) => l.includes(RECORDED))).toEqual([]);
});
