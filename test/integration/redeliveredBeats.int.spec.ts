import { EventStore, busOptionsOf, busRequest, connectBus } from "@manifold/bus";
import { BusEnv, BusHeader, CallLiveness, RegistryStream, Subjects, parseEnv } from "@manifold/contracts";
import { groupIdentity, type NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { AckPolicy, DeliverPolicy, jetstreamManager } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { afterAll, beforeAll, expect, test } from "vitest";
import { busEnv, connectAs, startNats } from "../helpers/stack.js";

/**
 * attack: a connector identity limited to upstream `a` keeps a call of upstream `victim` waiting on
 * a dead connector. It may not publish under `victim`'s beat subjects, but it may read the registry
 * stream, so it may create a push consumer there, and nats-server delivers a push consumer's messages
 * (and its idle heartbeats, for as long as the consumer lives) to any subject with a listener, past
 * its creator's publish rights (nats-io/nats-server#8274). A call's beat subject is predictable: its
 * own calls show the requester's part, and the token counts up. Measured before the requester
 * counted only beats naming a connector's inbox: the call waited its whole 10 s budget.
 */
const group = { name: "recs", upstreams: ["a"] };
let nats: NatsServer;
beforeAll(async () => void (nats = await startNats({ connectorGroups: [group] })));
afterAll(() => nats.stop());

test("attack: a push consumer's deliveries on another upstream's beat subject do not keep its call alive", async () => {
  const registry = await connectAs(nats, "registry", "log-owner");
  await EventStore.open(registry);
  const attacker = await connectBus({
    ...busOptionsOf(parseEnv(BusEnv, busEnv(nats, groupIdentity(group.name)))),
    role: "connector",
    name: "group-a",
    logger: createLogger({ component: "group-a", level: "silent" }),
  });
  const seen: string[] = [];
  attacker.subscribe(Subjects.upstreamCall("a"), {
    callback: (_e, m) => {
      seen.push(m.headers!.get(BusHeader.heartbeat));
      m.respond("done");
    },
  });
  await attacker.flush();
  // The victim's connector takes the call and dies: it never beats nor answers.
  const victim = await connectAs(nats, "connector", "victim-connector");
  victim.subscribe(Subjects.upstreamCall("victim"), { callback: () => undefined });
  await victim.flush();

  const requester = await connectAs(nats, "gateway", "requester");
  expect((await busRequest(requester, Subjects.upstreamCall("a"), "{}", { timeoutMs: 5_000, target: "upstream 'a'", heartbeats: "a" })).string()).toBe("done");
  // manifold.rpc.beat.a.<requester>.<token>: the victim's call is the requester's next token.
  const [, requesterPart, token] = /^manifold\.rpc\.beat\.a\.([^.]+)\.([^.]+)$/.exec(seen[0]!)!;
  const predicted = `${Subjects.callHeartbeats}.victim.${requesterPart}.${(parseInt(token!, 36) + 1).toString(36)}`;
  // nats-server starts a push consumer only for a listener of its literal deliver subject (a gateway's
  // wildcard on its beats is not one); this one stands in for any that names it.
  const listener = await connectAs(nats, "operator", "literal-listener");
  let delivered = 0;
  listener.subscribe(predicted, { callback: () => void delivered++ });
  await listener.flush();
  const beats = { name: "beats", deliver_subject: predicted, deliver_policy: DeliverPolicy.New, ack_policy: AckPolicy.None, idle_heartbeat: nanos(CallLiveness.beatMs / 3) };
  // A connector identity may create no consumer at all any more (it reads the registry by message
  // gets); the registry's identity stands in for one that could, so the beat check itself is tested.
  const refused = await (await jetstreamManager(attacker, { checkAPI: false })).consumers.add(RegistryStream.name, beats).then(() => "created", (e: Error) => e.message);
  expect(refused).toMatch(/Permissions Violation/);
  await (await jetstreamManager(registry)).consumers.add(RegistryStream.name, beats);

  const began = Date.now();
  const outcome = await busRequest(requester, Subjects.upstreamCall("victim"), "{}", { timeoutMs: 10_000, target: "upstream 'victim'", heartbeats: "victim" }).catch((e: unknown) => e);
  const ms = Date.now() - began;
  console.log(JSON.stringify({ ms, delivered, outcome: (outcome as { data?: unknown }).data }));
  // The forged beats arrived, for the whole call.
  expect(delivered).toBeGreaterThan(5);
  // Lost once the victim's connector is silent for silenceMs, not kept until the call's 10 s budget.
  expect(outcome).toMatchObject({ code: "upstream_unavailable", data: { reason: "connector_lost" } });
  expect(ms).toBeLessThan(CallLiveness.silenceMs + 2_000);
  for (const nc of [requester, victim, attacker, listener, registry]) await nc.close();
}, 20_000);
