import { Subjects } from "@manifold/contracts";
import { jetstream } from "@nats-io/jetstream";
import { randomUUID } from "node:crypto";
import { connectAs } from "./stack.js";

type Bus = Parameters<typeof connectAs>[0];

/** Appends an event as a release before the literal-secret checks wrote it (events replay as written). */
export async function appendEvent(nats: Bus, subject: string, type: string, data: object): Promise<void> {
  const nc = await connectAs(nats, "registry", "older-release");
  try {
    const commandId = randomUUID();
    const event = { type, version: 1, data, meta: { commandId, at: new Date().toISOString(), actor: "admin:ops" } };
    await jetstream(nc).publish(subject, JSON.stringify(event), { msgID: commandId });
  } finally {
    await nc.close();
  }
}

/** An upstream's registration as such a release recorded it. */
export const appendRecorded = (nats: Bus, name: string, transport: object) => appendEvent(nats, Subjects.upstreamEvents(name), "upstream.registered", { name, transport, options: {} });
