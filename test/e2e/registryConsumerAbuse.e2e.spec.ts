import { busOptionsOf, connectBus, followRegistry, type NatsConnection } from "@manifold/bus";
import { BusEnv, parseEnv, RegistryStream, Subjects } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { AckPolicy, DeliverPolicy, jetstreamManager } from "@nats-io/jetstream";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { connectWithKey, eventually, type DisposableClient } from "../helpers/mcp.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { busEnv, connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * Attack: what one connector group's identity (limited to its own upstream) can do to the other
 * readers of the registry stream. It may create, inspect and delete consumers on the stream (its
 * own follower needs to): (b) can it find and delete a gateway's or the registry's follower, and
 * does a deletion loop keep gateways from applying registry changes; (a) can it create so many
 * consumers that a gateway starting afterwards cannot follow the stream?
 */
const GROUP = { name: "solo", upstreams: ["solo"] };
const logger = createLogger({ component: "attacker", level: "silent" });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A consumer's name as nats.js names ordered consumers (`oc_<nuid>_<serial>`). */
const DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const decode = (text: string) => [...text].reduce((n, c) => n * 62n + BigInt(DIGITS.indexOf(c)), 0n);
const encode = (n: bigint) => Array.from({ length: 10 }, (_, i) => DIGITS[Number((n / 62n ** BigInt(9 - i)) % 62n)]).join("");
const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? a : gcd(b, a % b));

describe("a connector group's identity against the other readers of the registry stream", () => {
  let nats: NatsServer;
  let stack: Stack;
  let rec: RecordingUpstream;
  let names: Record<string, string>;
  let keys: Record<string, string>;
  let url: string;
  const logs: string[] = [];
  const opened: NatsConnection[] = [];
  const as = async (role: "connector-solo" | "operator" | "gateway") => {
    const nc =
      role === "connector-solo"
        ? await connectBus({ ...busOptionsOf(parseEnv(BusEnv, busEnv(nats, role))), role: "connector", name: "attacker", logger })
        : await connectAs(nats, role, `attacker-${role}`);
    opened.push(nc);
    return nc;
  };
  const consumerNames = async () => {
    const jsm = await jetstreamManager(await as("operator"));
    const found: string[] = [];
    for await (const name of jsm.consumers.list(RegistryStream.name)) found.push(name.name);
    return found;
  };
  /** How long after the admin's answer the gateway first accepts a new key (ms). */
  const keyIssuedLatency = async (consumer: string) => {
    const res = await stack.admin.post(`/v1/consumers/${consumer}/keys`, {});
    const at = Date.now();
    await eventually(async () => ((await modernRequest(url, res.body.key, "tools/list", {}, declaring({}, false))).status === 200 ? true : undefined), 20_000, 20);
    return { latency: Date.now() - at, key: res.body.key as string, keyId: res.body.keyId as string };
  };
  /** How long after the admin's answer the gateway first refuses a revoked key (ms). */
  const keyRevokedLatency = async (consumer: string, key: string, keyId: string) => {
    expect((await stack.admin.request("DELETE", `/v1/consumers/${consumer}/keys/${keyId}`)).status).toBe(204);
    const at = Date.now();
    await eventually(async () => ((await modernRequest(url, key, "tools/list", {}, declaring({}, false))).status === 401 ? true : undefined), 20_000, 20);
    return Date.now() - at;
  };
  const rss = () => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${nats.process.pid}/status`, "utf8"))?.[1] ?? 0) / 1024);
  const resubscriptions = () => logs.filter((l) => l.includes('"component":"gateway"') && l.includes("re-subscribing to the stream")).length;

  beforeAll(async () => {
    nats = await startNats({ connectorGroups: [GROUP] });
    [stack, rec] = await Promise.all([startStack(nats, { GATEWAY_AUTH: "required" }, { logs }), startRecordingUpstream("rec")]);
    // "solo" is the attacker's tenant's own upstream, served by its connector group (and the stack's connector).
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: rec.url } }, { name: "solo", transport: { type: "streamable-http", url: rec.url } });
    names = await createVirtualServer(stack, "ops", [
      { upstream: "rec", tool: "echo" },
      { upstream: "solo", tool: "echo" },
    ]);
    url = stack.mcpUrl("ops");
    keys = await grantedConsumers(stack, "ops", ["tenant", "rotating", "solo-agent"]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(opened.map((nc) => nc.close().catch(() => undefined)));
    await stack?.close();
    await rec?.close();
    await nats?.stop();
  });

  test("it cannot list the stream's consumers", async () => {
    const attacker = await jetstreamManager(await as("connector-solo"), { checkAPI: false });
    const listed = await (async () => {
      const found: string[] = [];
      for await (const c of attacker.consumers.list(RegistryStream.name)) found.push(c.name);
      return `listed ${found.length}`;
    })().catch((e: Error) => `refused: ${e.message}`);
    console.log(`[measure] list: ${listed}; followers on the stream: ${(await consumerNames()).join(", ")}`);
    expect(listed).toMatch(/^refused/);
  }, 30_000);

  test("it cannot work out a gateway follower's name from the calls it serves and delete it", async () => {
    const attackerNc = await as("connector-solo");
    const attacker = await jetstreamManager(attackerNc, { checkAPI: false });
    // Every nuid the gateway's process sent along with a call to the attacker's upstream (its progress subject, its reply inbox).
    const seen: { prefix: string; seq: bigint }[] = [];
    const sub = attackerNc.subscribe(Subjects.upstreamCall("solo"), {
      callback: (_e, msg) => {
        const text = `${msg.reply ?? ""} ${[...(msg.headers ?? new Map<string, string[]>())].map(([, v]) => v.join(" ")).join(" ")} ${msg.string()}`;
        for (const token of text.split(/[^0-9A-Za-z]+/)) if (token.length === 22) seen.push({ prefix: token.slice(0, 12), seq: decode(token.slice(12)) });
      },
    });
    const soloAgent: DisposableClient = await connectWithKey(url, keys["solo-agent"]!);
    const soloCall = () => soloAgent.callTool({ name: names["solo/echo"]!, arguments: { message: "x" } }, undefined, { onprogress: () => undefined });
    const victim: DisposableClient = await connectWithKey(url, keys.tenant!);
    let running = true;
    let deleted = 0;
    let attempts = 0;
    const before = resubscriptions();
    // Two calls give the gateway process's nuid prefix and increment; every consumer it opens later is named a few increments on.
    const loop = (async () => {
      while (running) {
        await soloCall().catch(() => undefined);
        const latest = seen.at(-1);
        const increments = seen.slice(1).map((n, i) => (n.prefix === seen[i]!.prefix ? n.seq - seen[i]!.seq : 0n)).filter((d) => d > 0n);
        if (!latest || increments.length === 0) continue;
        const inc = increments.reduce(gcd);
        const guesses = Array.from({ length: 400 }, (_, j) => `${latest.prefix}${encode(latest.seq - BigInt(j) * inc)}_1`);
        for (let i = 0; i < guesses.length && running; i += 100) {
          await Promise.all(
            guesses.slice(i, i + 100).map((name) =>
              attacker.consumers.delete(RegistryStream.name, name).then(
                () => void deleted++,
                () => undefined,
              ),
            ),
          );
          attempts += Math.min(100, guesses.length - i);
        }
        await sleep(20);
      }
    })();
    const calls = { ok: 0, failed: 0 };
    const calling = (async () => {
      while (running) {
        await victim.callTool({ name: names["rec/echo"]!, arguments: { message: "hi" } }).then(
          (r) => void (r.isError ? calls.failed++ : calls.ok++),
          () => void calls.failed++,
        );
      }
    })();
    try {
      await sleep(2_000);
      const issue: number[] = [];
      const revoke: number[] = [];
      for (let i = 0; i < 3; i++) {
        const issued = await keyIssuedLatency("rotating");
        issue.push(issued.latency);
        revoke.push(await keyRevokedLatency("rotating", issued.key, issued.keyId));
      }
      running = false;
      await Promise.all([loop, calling]);
      const resubscribed = resubscriptions() - before;
      console.log(
        `[measure] ${seen.length} gateway nuids seen in calls; ${attempts} guessed deletions, ${deleted} followers deleted, ${resubscribed} gateway re-subscriptions; keys applied after ${issue.join("/")} ms, revocations after ${revoke.join("/")} ms; other tenant's calls ${calls.ok} ok, ${calls.failed} failed`,
      );
      expect({ deleted, resubscribed }).toEqual({ deleted: 0, resubscribed: 0 });
    } finally {
      running = false;
      sub.unsubscribe();
      await soloAgent.close();
      await victim.close();
    }
  }, 120_000);

  test("it can create no consumer on any stream, of any name or size; nor can a gateway's identity", async () => {
    const rssBefore = rss();
    const before = (await consumerNames()).length;
    const attempts: Promise<string>[] = [];
    for (const role of ["connector-solo", "gateway"] as const) {
      const jsm = await jetstreamManager(await as(role), { checkAPI: false });
      for (const stream of [RegistryStream.name, "MANIFOLD_HEALTH", "MANIFOLD_AUDIT"]) {
        for (let i = 0; i < 100; i++) {
          // Before: 20,000 of these took nats-server from 18 to 739 MiB; one with max_waiting 1e9 alone +490 MiB.
          const config = { name: `hoard-${i}-${Math.random().toString(36).slice(2)}`, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.New, mem_storage: true, inactive_threshold: 24 * 3600 * 1e9, ...(i === 0 ? { max_waiting: 100_000_000 } : {}) };
          attempts.push(jsm.consumers.add(stream, config).then(() => "created", (e: Error) => e.message));
        }
      }
    }
    const outcomes = await Promise.all(attempts);
    const created = outcomes.filter((o) => o === "created").length;
    console.log(`[measure] ${created} of ${outcomes.length} consumers created (${before} → ${(await consumerNames()).length} on the registry stream, nats-server RSS ${rssBefore} → ${rss()} MiB); refusals: ${[...new Set(outcomes.map((o) => o.replace(/"[^"]*"/, "<subject>")))].join(" | ")}`);
    expect(created).toBe(0);
    expect((await consumerNames()).length).toBe(before);
  }, 60_000);

  test("consumers it creates do not keep a starting gateway from following the stream", async () => {
    const attacker = await jetstreamManager(await as("connector-solo"), { checkAPI: false });
    const COUNT = Number(process.env.TEST_HOARD ?? 3_000);
    const rssBefore = rss();
    const started = Date.now();
    let created = 0;
    let refused = "";
    for (let i = 0; i < COUNT && !refused; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, () =>
          attacker.consumers
            .add(RegistryStream.name, {
              name: `hoard-${created}-${Math.random().toString(36).slice(2)}`,
              ack_policy: AckPolicy.None,
              deliver_policy: DeliverPolicy.New,
              mem_storage: true,
              inactive_threshold: 24 * 3600 * 1e9,
            })
            .then(
              () => void created++,
              (e: Error) => void (refused ||= e.message),
            ),
        ),
      );
    }
    const createdMs = Date.now() - started;
    // A gateway starting now: its follower opens and catches up.
    const sink = { sequence: 0, apply(_e: unknown, s: number) { this.sequence = s; }, skip(s: number) { this.sequence = s; } };
    const followStarted = Date.now();
    const follower = await followRegistry(await as("gateway"), sink, logger).then(
      async (f) => (await f.caughtUp, f),
      (e: Error) => e,
    );
    const followMs = Date.now() - followStarted;
    const issued = await keyIssuedLatency("rotating");
    console.log(
      `[measure] created ${created}/${COUNT} consumers in ${createdMs} ms (nats-server RSS ${rssBefore} → ${rss()} MiB)${refused ? ` (then refused: ${refused})` : ""}; a new follower ${follower instanceof Error ? `failed: ${follower.message}` : `caught up in ${followMs} ms`}; a new key applied after ${issued.latency} ms`,
    );
    if (!(follower instanceof Error)) await follower.stop();
    expect(follower).not.toBeInstanceOf(Error);
    // No cap to exhaust (the stream and the account allow any number): a cap shared by every identity is
    // one this attacker could fill, so none is set; what matters is that the gateway still follows.
    expect(issued.latency).toBeLessThan(1_000);
  }, 180_000);
});
