import { EventStore, busRequest, inboxPrefixOf } from "@manifold/bus";
import { BusHeader, CallLiveness, RegistryStream, Subjects } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { jetstreamManager } from "@nats-io/jetstream";
import { createInbox } from "@nats-io/transport-node";
import { afterAll, beforeAll, expect, test } from "vitest";
import { connectAs, startNats } from "../helpers/stack.js";

// A request with heartbeats lives as long as its responder beats, and is given up soon after the beats stop.
// Gateway and connector identities, as in production: the beats and the answer must all pass nats-server's
// response permissions.
const HELD = Subjects.upstreamCall("held");
let nats: NatsServer;
beforeAll(async () => void (nats = await startNats()));
afterAll(() => nats.stop());

test("beats keep a long request alive; silence fails it as lost with the connector, well before its timeout", async () => {
  const responder = await connectAs(nats, "connector", "responder");
  const asked: string[] = [];
  responder.subscribe(HELD, {
    callback: (_e, m) => {
      asked.push(m.headers?.get(BusHeader.heartbeat) ?? "");
      const { beats, answerAfter, elsewhere } = JSON.parse(m.string()) as { beats: number; answerAfter: number; elsewhere?: boolean };
      // Beats under another upstream's name (what another upstream's connector may publish) for the same request.
      const subject = m.headers!.get(BusHeader.heartbeat);
      const beatOn = elsewhere ? subject.replace(`${Subjects.callHeartbeats}.held.`, `${Subjects.callHeartbeats}.other.`) : subject;
      let sent = 0;
      const timer = setInterval(() => {
        // Where the requester asked for beats: a subject of their own, never the reply subject
        // (a responder may answer a request once).
        // A request given up outlives its test: once the responder is closed, nothing more is sent.
        // With a reply into its inbox, as a connector's beats name (a requester counts no other).
        if (sent++ < beats && !responder.isClosed()) responder.publish(beatOn, new Uint8Array(0), { reply: createInbox(inboxPrefixOf(responder)) });
        else clearInterval(timer);
      }, CallLiveness.beatMs);
      if (answerAfter) setTimeout(() => !responder.isClosed() && m.respond("answered"), answerAfter);
    },
  });
  await responder.flush();
  const requester = await connectAs(nats, "gateway", "requester");
  const ask = (body: object) => busRequest(requester, HELD, JSON.stringify(body), { timeoutMs: 20_000, target: "upstream 'x'", heartbeats: "held" });

  // Answered after 4 s, more than the silence window, on beats alone.
  const kept = Date.now();
  expect((await ask({ beats: 10, answerAfter: 4_000 })).string()).toBe("answered");
  expect(Date.now() - kept).toBeGreaterThanOrEqual(4_000);

  // Two beats, then nothing: lost about silenceMs after the last one.
  const lostAt = Date.now();
  const lost = await ask({ beats: 2, answerAfter: 0 }).catch((e: unknown) => e);
  const lastBeat = lostAt + 2 * CallLiveness.beatMs;
  expect(lost).toMatchObject({ code: "upstream_unavailable", data: { reason: "connector_lost" } });
  expect((lost as Error).message).toContain("upstream 'x'");
  expect(Date.now() - lastBeat).toBeGreaterThanOrEqual(CallLiveness.silenceMs - 50);
  expect(Date.now() - lastBeat).toBeLessThan(3_000);

  // Beats under another upstream's name do not count: lost as if silent (before, any connector's beats kept any call waiting).
  const forgedAt = Date.now();
  const forged = await ask({ beats: 10, answerAfter: 6_000, elsewhere: true }).catch((e: unknown) => e);
  expect(forged).toMatchObject({ code: "upstream_unavailable", data: { reason: "connector_lost" } });
  expect(Date.now() - forgedAt).toBeLessThan(CallLiveness.silenceMs + 2_000);

  // Without heartbeats asked for, a silent responder is waited for until the timeout, as before.
  const plain = await busRequest(requester, HELD, JSON.stringify({ beats: 0, answerAfter: 0 }), { timeoutMs: 300, target: "upstream 'x'" }).catch((e: unknown) => e);
  expect(plain).toMatchObject({ code: "upstream_timeout" });
  expect(asked.slice(0, 3).every((subject) => subject.startsWith(`${Subjects.callHeartbeats}.held.`))).toBe(true);
  expect(asked[3]).toBe("");
  await requester.close();
  await responder.close();
});

// A beat names a reply subject (the connector's probe for a requester gone), and a gateway, which may
// answer what it receives (`allow_responses`), left every beat unanswered: nats-server kept each
// reply subject for an hour, and 2.9 rescans them all at each such delivery past 4,096
// (nats-io/nats-server#6058). Under long calls a gateway's beats grew slower without end: 30,000
// beats took 6.5 s to deliver, against 0.3 s answered (measured on a bare nats-server 2.9.10).
test("every beat is answered, empty, so nats-server forgets its reply subject: 30,000 beats of one long call in seconds", async () => {
  const responder = await connectAs(nats, "connector", "beating");
  const answers = createInbox(inboxPrefixOf(responder));
  let answered = 0;
  responder.subscribe(`${answers}.*`, { callback: (_e, m) => void (m.data.length === 0 && m.headers?.code !== 503 && answered++) });
  const BEATS = 30_000;
  let beganAt = 0;
  responder.subscribe(Subjects.upstreamCall("long"), {
    callback: (_e, m) => {
      const subject = m.headers!.get(BusHeader.heartbeat);
      beganAt = performance.now();
      // A thousand at a time, each thousand given up to 50 ms to be answered: many long calls' beats
      // arrive spread out, not all at once (a burst is delivered before any can be answered).
      void (async () => {
        for (let sent = 0; sent < BEATS; ) {
          for (const end = sent + 1_000; sent < end; sent++) responder.publish(subject, new Uint8Array(0), { reply: `${answers}.${sent}` });
          await responder.flush();
          for (const until = performance.now() + 50; answered < sent && performance.now() < until; ) await new Promise((r) => setTimeout(r, 1));
        }
        // After every beat on the one connection: answered once the requester has read them all.
        m.respond("done");
      })();
    },
  });
  await responder.flush();
  const requester = await connectAs(nats, "gateway", "beaten");
  const answer = await busRequest(requester, Subjects.upstreamCall("long"), "{}", { timeoutMs: 60_000, target: "upstream 'long'", heartbeats: "long" });
  const ms = performance.now() - beganAt;
  expect(answer.string()).toBe("done");
  await requester.flush();
  await responder.flush();
  console.log(JSON.stringify({ beats: BEATS, ms: Math.round(ms), answered }));
  // An empty answer, which the connector reads as "still listening" (only nats-server's 503 is "gone").
  expect(answered).toBe(BEATS);
  expect(ms).toBeLessThan(3_000);
  await requester.close();
  await responder.close();
}, 60_000);

// attack: a beat's reply subject is the beater's word, and a requester that answers it lends the
// beater its own right to publish there (nats-server's `allow_responses`). A connector identity that
// named `$JS.API.STREAM.DELETE.MANIFOLD_REGISTRY` would have had the gateway delete the registry's log.
test("attack: a beat whose reply names anything but a connector's inbox is not answered", async () => {
  const registry = await connectAs(nats, "registry", "log-owner");
  await EventStore.open(registry);
  const jsm = await jetstreamManager(registry);
  const operator = await connectAs(nats, "operator", "watcher");
  const targets = [`$JS.API.STREAM.DELETE.${RegistryStream.name}`, "_INBOX.registry.guessed", Subjects.upstreamCall("other")];
  const heard: string[] = [];
  for (const target of targets) operator.subscribe(target, { callback: (_e, m) => void heard.push(m.subject) });
  await operator.flush();
  const responder = await connectAs(nats, "connector", "deputy-seeker");
  responder.subscribe(Subjects.upstreamCall("aimed"), {
    callback: (_e, m) => {
      const subject = m.headers!.get(BusHeader.heartbeat);
      for (const target of targets) responder.publish(subject, new Uint8Array(0), { reply: target });
      setTimeout(() => m.respond("done"), 200);
    },
  });
  await responder.flush();
  const requester = await connectAs(nats, "gateway", "aimed-at");
  expect((await busRequest(requester, Subjects.upstreamCall("aimed"), "{}", { timeoutMs: 5_000, target: "upstream 'aimed'", heartbeats: "aimed" })).string()).toBe("done");
  await requester.flush();
  await operator.flush();
  expect(heard).toEqual([]);
  expect((await jsm.streams.info(RegistryStream.name)).config.name).toBe(RegistryStream.name);
  for (const nc of [requester, responder, operator, registry]) await nc.close();
});
