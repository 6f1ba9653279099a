import { ManifoldError } from "@manifold/contracts";
import type { FastifyReply } from "fastify";

/** A request id's key among a session's pending ids (`1` and `"1"` are two). */
const requestKey = (id: string | number) => `${typeof id}:${id}`;

/** The requests in a message or batch, each id with its key (notifications and responses carry no id to answer). */
function requestsIn(body: unknown): { id: string | number; key: string }[] {
  const requests: { id: string | number; key: string }[] = [];
  for (const m of Array.isArray(body) ? body : [body]) {
    const { id, method } = m as { id?: unknown; method?: unknown };
    if (typeof method === "string" && (typeof id === "string" || typeof id === "number")) requests.push({ id, key: requestKey(id) });
  }
  return requests;
}

/** The JSON-RPC request ids (typed: `number:1`, `string:1`) of one session whose answers this replica has not finished. */
export class PendingRequestIds {
  readonly #keys = new Set<string>();

  /**
   * The SDK routes answers by request id: a second request with an id still in flight would
   * never be answered, so it is refused now. An id is released when its response ends and, where
   * the response ended first (a client gone: a 2025 call runs on), when its call does: reused
   * meanwhile, it received the first call's progress and result, and shared its call id, so a
   * cancellation reached only one of the two. `ended`: when the call under an id ends, if it runs.
   */
  claim(body: unknown, reply: FastifyReply, ended: (id: string | number) => Promise<void> | undefined): void {
    const requests = requestsIn(body);
    if (requests.length === 0) return;
    const keys = requests.map((r) => r.key);
    const clash = keys.find((key, i) => this.#keys.has(key) || keys.indexOf(key) !== i);
    if (clash) throw new ManifoldError("duplicate_request_id", `request id ${clash.slice(clash.indexOf(":") + 1, 200)} is already in flight in this session`);
    for (const key of keys) this.#keys.add(key);
    reply.raw.once("close", () => {
      for (const { id, key } of requests) {
        const running = ended(id);
        if (running) void running.then(() => this.#keys.delete(key));
        else this.#keys.delete(key);
      }
    });
  }

  /** Whether the request `id` is pending here (its answer not finished). */
  has(id: string | number): boolean {
    return this.#keys.has(requestKey(id));
  }
}
