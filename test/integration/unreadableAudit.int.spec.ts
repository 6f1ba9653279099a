import { jetstream } from "@nats-io/jetstream";
import { expect, test } from "vitest";
import { useRegistryOnly } from "../helpers/registryOnly.js";
import { connectAs } from "../helpers/stack.js";

// attack: a gateway's identity may publish audit records (it writes them), and the registry read
// each with nats.js's `message.json()`: one record that is no JSON made every page that reached it
// fail, so the records after it could not be read through the admin API (`next` never passed it).

const r = useRegistryOnly();

test("attack: an audit record that is no JSON is skipped, and the records after it are read", async () => {
  const gateway = await connectAs(r.nats, "gateway");
  const js = jetstream(gateway);
  const record = (consumer: string) =>
    JSON.stringify({ at: new Date().toISOString(), consumer, virtualServer: "vs", environment: "default", exposedTool: "t", tool: "t", upstream: "u", durationMs: 1, outcome: "ok", argumentBytes: 0, resultBytes: 0 });
  await js.publish("manifold.audit.vs", record("consumer:before"));
  await js.publish("manifold.audit.vs", "not json");
  await js.publish("manifold.audit.vs", record("consumer:after"));
  await gateway.close();
  for (const query of ["", "?virtualServer=vs"]) {
    const res = await r.admin.get(`/v1/audit${query}`);
    console.log(JSON.stringify({ query, status: res.status, body: res.body }));
    expect(res.status).toBe(200);
    expect(res.body.items.map((i: { consumer: string }) => i.consumer)).toEqual(["consumer:before", "consumer:after"]);
  }
});
