import { ManifoldError } from "@manifold/contracts";
import { describe, expect, test, vi } from "vitest";
import { SILENT_PAUSE_MAX_MS, UpstreamLiveness } from "./upstreamLiveness.js";

const noAnswer = () => Promise.reject(new ManifoldError("upstream_timeout", "upstream 'u' did not answer within 50 ms"));
const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
};

describe("whether an upstream answers at all", () => {
  test("a timeout whose ping is answered is a slow tool: the upstream is not silent, and nothing changes", async () => {
    let pings = 0;
    let changes = 0;
    const liveness = new UpstreamLiveness(async () => (pings++, true), 50, () => changes++);
    liveness.timedOut("upstream 'u' did not answer within 2000 ms");
    await until(() => pings === 1);
    expect(liveness.silent).toBeUndefined();
    expect(changes).toBe(0);
    liveness.close();
  });

  test("an unanswered ping makes it silent, naming the timeout; one ping at a time; an answer ends it", async () => {
    let pings = 0;
    let changes = 0;
    let answers = false;
    const liveness = new UpstreamLiveness(() => (pings++, answers ? Promise.resolve(true) : noAnswer()), 50, () => changes++);
    liveness.timedOut("upstream 'u' did not answer within 2000 ms");
    liveness.timedOut("upstream 'u' did not answer within 2000 ms");
    await until(() => liveness.silent !== undefined);
    expect(pings).toBe(1);
    expect(changes).toBe(1);
    expect(liveness.silent).toBe("answers nothing: no answer to a ping within 50 ms, after upstream 'u' did not answer within 2000 ms");
    answers = true;
    // Pinged again after a pause, and answered.
    await until(() => liveness.silent === undefined);
    expect(pings).toBe(2);
    expect(changes).toBe(2);
    liveness.close();
  });

  test("an error answer, or no connection to ask on, is no silence: the session's own state speaks for those", async () => {
    for (const ping of [() => Promise.reject(new ManifoldError("upstream_error", "method not found")), async () => false]) {
      let done = false;
      const liveness = new UpstreamLiveness(() => ping().finally(() => (done = true)), 50, () => undefined);
      liveness.timedOut("timeout");
      await until(() => done);
      await new Promise((r) => setTimeout(r, 10));
      expect(liveness.silent).toBeUndefined();
      liveness.close();
    }
  });

  test("a ping that cannot reach the upstream (a proxy's 502, a refused connection) is down, naming it; a 503 or an error answer is not", async () => {
    const unreachable = [
      new ManifoldError("upstream_unavailable", " answered HTTP 502", { httpStatus: 502 }),
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }),
    ];
    for (const failure of unreachable) {
      const liveness = new UpstreamLiveness(() => Promise.reject(failure), 50, () => undefined);
      liveness.timedOut("upstream 'u' answered HTTP 502");
      await until(() => liveness.silent !== undefined);
      expect(liveness.silent).toMatch(/^cannot be reached: a ping failed \(.+\), after upstream 'u' answered HTTP 502$/);
      // The connector's own verdict: its calls are refused at once while it stands.
      expect(liveness.unreachable).toMatch(/^a ping failed \(.+\)$/);
      liveness.close();
    }
    let done = false;
    const busy = new UpstreamLiveness(() => Promise.reject(new ManifoldError("upstream_unavailable", " answered HTTP 503", { httpStatus: 503 })).finally(() => (done = true)), 50, () => undefined);
    busy.timedOut("x");
    await until(() => done);
    await new Promise((r) => setTimeout(r, 10));
    expect(busy.silent).toBeUndefined();
    expect(busy.unreachable).toBeUndefined();
    busy.close();
  });

  test("the upstream counts as unreachable only while its last ping could not reach it: a ping that times out, or any answer, ends that", async () => {
    vi.useFakeTimers();
    try {
      const gone = () => Promise.reject(new ManifoldError("upstream_unavailable", " answered HTTP 502", { httpStatus: 502 }));
      let ping: () => Promise<boolean> = gone;
      const liveness = new UpstreamLiveness(() => ping(), 50, () => undefined);
      liveness.timedOut("upstream 'u' answered HTTP 502");
      await vi.advanceTimersByTimeAsync(0);
      expect(liveness.unreachable).toBe("a ping failed (answered HTTP 502)");
      // Reached, but silent: the calls go out again (and time out as their own).
      ping = noAnswer;
      await vi.advanceTimersByTimeAsync(1_000);
      expect(liveness.unreachable).toBeUndefined();
      expect(liveness.silent).toMatch(/^cannot be reached/);
      ping = gone;
      await vi.advanceTimersByTimeAsync(2_000);
      expect(liveness.unreachable).toBeDefined();
      // Anything answered on the shared session (a listing, a reconnection) ends it at once.
      liveness.answered();
      expect({ silent: liveness.silent, unreachable: liveness.unreachable }).toEqual({ silent: undefined, unreachable: undefined });
      liveness.close();
    } finally {
      vi.useRealTimers();
    }
  });

  test("while it cannot be reached, what the shared session would ask is refused, saying when the next ping goes: never 0, at most the longest pause", async () => {
    vi.useFakeTimers();
    try {
      let pinging: (() => void) | undefined;
      const gone = () => new Promise<boolean>((_, reject) => (pinging = () => reject(new ManifoldError("upstream_unavailable", " answered HTTP 502", { httpStatus: 502 }))));
      const liveness = new UpstreamLiveness(gone, 50, () => undefined, 5_000);
      const refusal = () => {
        try {
          liveness.refuseIfUnreachable("upstream 'u'");
          return undefined;
        } catch (error) {
          return error as ManifoldError;
        }
      };
      expect(refusal()).toBeUndefined();
      liveness.timedOut("upstream 'u' answered HTTP 502");
      pinging!();
      await vi.advanceTimersByTimeAsync(0);
      expect(refusal()?.toJSON()).toEqual({ code: "upstream_unavailable", message: "upstream 'u' cannot be reached: a ping failed (answered HTTP 502)", data: { retryAfterMs: 1_000 } });
      await vi.advanceTimersByTimeAsync(400);
      expect(refusal()?.data).toEqual({ retryAfterMs: 600 });
      // A ping under way (its pause over): the least pause, not 0.
      await vi.advanceTimersByTimeAsync(600);
      expect(refusal()?.data).toEqual({ retryAfterMs: 1_000 });
      const hints: number[] = [];
      for (let i = 0; i < 6; i++) {
        pinging!();
        await vi.advanceTimersByTimeAsync(0);
        hints.push(refusal()!.data!.retryAfterMs as number);
        await vi.advanceTimersByTimeAsync(hints.at(-1)!);
      }
      expect(hints).toEqual([2_000, 4_000, 5_000, 5_000, 5_000, 5_000]);
      liveness.answered();
      expect(refusal()).toBeUndefined();
      liveness.close();
    } finally {
      vi.useRealTimers();
    }
  });

  test("any answer on the shared session ends the silence at once; closing stops the pings", async () => {
    let pings = 0;
    const liveness = new UpstreamLiveness(() => (pings++, noAnswer()), 20, () => undefined);
    liveness.timedOut("timeout");
    await until(() => liveness.silent !== undefined);
    liveness.answered();
    expect(liveness.silent).toBeUndefined();
    liveness.close();
    const after = pings;
    await new Promise((r) => setTimeout(r, 1_200));
    expect(pings).toBeLessThanOrEqual(after + 1);
  });

  test("attack: an upstream that stays silent is pinged ever less often, at most SILENT_PAUSE_MAX_MS apart (a stdio one's)", async () => {
    // A 2025-era HTTP or SSE ping the SDK gave up on held its socket (and its cancellation's) for
    // undici's 300 s: pinged every second, a hung upstream held ~2 more sockets a second for as long
    // as it hung. Both are ended now (AbandonedRequests); the pacing spares the silent upstream.
    vi.useFakeTimers();
    try {
      const at: number[] = [];
      const liveness = new UpstreamLiveness(() => (at.push(Date.now()), noAnswer()), 50, () => undefined);
      const started = Date.now();
      liveness.timedOut("timeout");
      await vi.advanceTimersByTimeAsync(300_000);
      // 1 s, 2 s, 4 s … 30 s apart: 14 in 300 s (before: one a second, 301).
      expect(at.length).toBeLessThanOrEqual(15);
      expect(at[1]! - at[0]!).toBe(1_000);
      const gaps = at.slice(1).map((t, i) => t - at[i]!);
      expect(Math.max(...gaps)).toBe(SILENT_PAUSE_MAX_MS);
      expect(at[0]).toBe(started);
      expect(liveness.silent).toBeDefined();
      liveness.answered();
      expect(liveness.silent).toBeUndefined();
      liveness.close();
    } finally {
      vi.useRealTimers();
    }
  });

  test("an HTTP upstream's pauses stop growing at the pause it is given (the breaker's cooldown): one ping at a time all the same", async () => {
    // Capped at 30 s, an idle upstream that ran again was `down` for 26 s more (upstreamProbe.e2e).
    vi.useFakeTimers();
    try {
      const at: number[] = [];
      let inFlight = 0;
      let most = 0;
      const ping = async () => {
        at.push(Date.now());
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setTimeout(r, 50));
        inFlight--;
        return noAnswer();
      };
      const liveness = new UpstreamLiveness(ping, 50, () => undefined, 5_000);
      liveness.timedOut("timeout");
      liveness.timedOut("timeout");
      await vi.advanceTimersByTimeAsync(300_000);
      const gaps = at.slice(1).map((t, i) => t - at[i]!);
      // 1 s, 2 s, 4 s, then 5 s (and the ping's 50 ms) apart: 62 in 300 s, against 14 at a 30 s cap.
      expect(gaps.slice(0, 4)).toEqual([1_050, 2_050, 4_050, 5_050]);
      expect(Math.max(...gaps)).toBe(5_050);
      expect(at.length).toBeLessThanOrEqual(62);
      expect(most).toBe(1);
      liveness.close();
    } finally {
      vi.useRealTimers();
    }
  });
});
