import { RegistryEvent, RegistryStream, Subjects } from "@manifold/contracts";
import type { NatsConnection } from "@manifold/bus";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { readPage } from "../streamPage.js";
import { NameParams } from "./lookups.js";
import { historyView } from "./views.js";

const HistoryQuery = z.object({
  /** Stream sequence to continue after (from the previous page's `next`). */
  after: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(1_000).default(100),
});

const subjectOf = {
  upstreams: Subjects.upstreamEvents,
  "virtual-servers": Subjects.virtualServerEvents,
  consumers: Subjects.consumerEvents,
  environments: Subjects.environmentEvents,
  "identity-providers": Subjects.identityProviderEvents,
};

/**
 * `GET /v1/<kind>/<name>/history`: every change of one object, oldest first, read from the
 * registry stream itself; a deleted object's history stays readable.
 */
export function registerHistoryRoutes(app: FastifyInstance, nc: NatsConnection): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  for (const [kind, subject] of Object.entries(subjectOf)) {
    r.get(`/v1/${kind}/:name/history`, { schema: { params: NameParams, querystring: HistoryQuery } }, async (req) =>
      readPage(nc, {
        stream: RegistryStream.name,
        subjects: subject(req.params.name),
        after: req.query.after,
        limit: req.query.limit,
        pick: (message) => {
          const event = RegistryEvent.safeParse(message.json());
          return event.success ? historyView(event.data, message.seq) : undefined;
        },
      }),
    );
  }
}
