import { expect, test } from "vitest";
import { startRegistry } from "../helpers/registryOnly.js";
import { startNats } from "../helpers/stack.js";

// A command the registry cannot take while its bus is away is answered 503 `bus_unavailable`, which a
// client may retry; without a `Retry-After` a client had to guess when (HTTP clients and proxies that
// retry a 503 read it, RFC 9110 §10.2.3), and `manifold` and the console retried at their own pace.

test("with NATS gone, a command is answered 503 bus_unavailable with Retry-After: 1", async () => {
  const nats = await startNats();
  await using r = await startRegistry(nats.url);
  await nats.stop();
  const started = Date.now();
  let answer: Awaited<ReturnType<typeof r.admin.post>> | undefined;
  // The registry notices the bus is gone within its ping interval; until then a command may wait on it.
  while (Date.now() - started < 20_000) {
    answer = await r.admin.post("/v1/virtual-servers", { name: `vs-${Date.now()}`, tools: [] });
    if (answer.status === 503) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  expect(answer?.status, JSON.stringify(answer?.body)).toBe(503);
  expect(answer?.body).toMatchObject({ error: { code: "bus_unavailable" } });
  expect(answer?.headers.get("retry-after")).toBe("1");
}, 40_000);
