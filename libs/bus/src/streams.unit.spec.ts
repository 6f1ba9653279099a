import { HealthStream } from "@manifold/contracts";
import type { StreamInfo } from "@nats-io/jetstream";
import { describe, expect, test } from "vitest";
import { checkedStream } from "./streams.js";

const health = (config: Record<string, unknown>) => ({ config: { name: HealthStream.name, subjects: [HealthStream.subjects], ...config } }) as unknown as StreamInfo;

// What streamChecks.int cannot make on nats-server 2.10.27 (it drops a stream's subject transform), checked on the config alone.
describe("checkedStream", () => {
  test("takes the stream as Manifold makes it", () => {
    expect(checkedStream(health({})).config.name).toBe(HealthStream.name);
  });
  test.each([
    ["captures more", { subjects: [HealthStream.subjects, "manifold.rpc.>"] }, /captures .*, not only manifold\.health\.>/],
    ["is fed from another stream", { sources: [{ name: "COPY" }] }, /copies another stream/],
    ["republishes", { republish: { src: ">", dest: "elsewhere.>" } }, /republishes what it captures/],
    ["rewrites its subjects (one upstream's report stored as another's)", { subject_transform: { src: "manifold.health.upstream.a.*", dest: "manifold.health.upstream.victim.{{wildcard(1)}}" } }, /rewrites the subjects it captures/],
  ])("refuses one that %s", (_, config, message) => {
    expect(() => checkedStream(health(config))).toThrow(message);
  });
});
