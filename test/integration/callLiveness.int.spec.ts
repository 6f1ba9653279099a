import { busRequest } from "@manifold/bus";
import { BusHeader, CallLiveness, Subjects } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
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
        if (sent++ < beats) responder.publish(beatOn, new Uint8Array(0));
        else clearInterval(timer);
      }, CallLiveness.beatMs);
      if (answerAfter) setTimeout(() => m.respond("answered"), answerAfter);
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
