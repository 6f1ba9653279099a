import { RegistryEvent, RegistryStream } from "@manifold/contracts";
import { subjectOf, type AggregateKind } from "@manifold/domain";
import type { NatsConnection } from "@manifold/bus";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { PageReads } from "../pageReads.js";
import { readPage } from "../streamPage.js";
import { NameParams } from "./lookups.js";
import { historyView } from "./views.js";

const HistoryQuery = z.object({
  /** Stream sequence to continue after (from the previous page's `next`). */
  after: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(1_000).default(100),
});

/** The admin API's collection names and the kinds of object they hold. */
const kinds = {
  upstreams: "upstream",
  "virtual-servers": "virtual-server",
  consumers: "consumer",
  environments: "environment",
  "identity-providers": "identity-provider",
} as const satisfies Record<string, AggregateKind>;

/**
 * `GET /v1/<kind>/<name>/history`: every change of one object, oldest first, read from the
 * registry stream itself; a deleted object's history stays readable.
 */
export function registerHistoryRoutes(app: FastifyInstance, nc: NatsConnection, reads: PageReads): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  for (const [collection, kind] of Object.entries(kinds)) {
    r.get(`/v1/${collection}/:name/history`, { schema: { params: NameParams, querystring: HistoryQuery } }, async (req) =>
      reads.run(req.adminName, () =>
        readPage(nc, {
          stream: RegistryStream.name,
          subjects: subjectOf({ kind, name: req.params.name }),
          after: req.query.after,
          limit: req.query.limit,
          pick: (message) => {
            const event = RegistryEvent.safeParse(message.json());
            return event.success ? historyView(event.data, message.seq) : undefined;
          },
        }),
      ),
    );
  }
}
