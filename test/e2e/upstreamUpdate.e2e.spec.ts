import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

let nats: NatsServer;
let stack: Stack;
let before: RecordingUpstream;
let after: RecordingUpstream;

beforeAll(async () => {
  nats = await startNats();
  [stack, before, after] = await Promise.all([startStack(nats.url), startRecordingUpstream("before-move"), startRecordingUpstream("after-move")]);
});

afterAll(async () => {
  await stack?.close();
  await Promise.all([before?.close(), after?.close()]);
  await nats?.stop();
});

test("an upstream moved to another URL is discovered at its new place, whether or not the old one still answers", async () => {
  await registerUpstreams(stack, { name: "moving", transport: { type: "streamable-http", url: before.url } });
  const moved = await stack.admin.request("PUT", "/v1/upstreams/moving", { transport: { type: "streamable-http", url: after.url } });
  expect(moved.status).toBe(200);
  expect(moved.body.discovery).toMatchObject({ status: "ok" });
  expect(moved.body.serverInfo.name).toBe("after-move");

  // Back to the first place, now gone: the answer is about the new registration, not the old one.
  await before.close();
  const startedAt = Date.now();
  const gone = await stack.admin.request("PUT", "/v1/upstreams/moving", { transport: { type: "streamable-http", url: before.url } });
  expect(gone.body.discovery.status).toBe("failed");
  expect(Date.now() - startedAt).toBeLessThan(14_000);
});
