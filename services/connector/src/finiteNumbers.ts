import { holdsNonFiniteNumber, nonFiniteNumberPath } from "@manifold/contracts";
import { INVALID_REQUEST, type JSONRPCMessage, type Transport } from "@modelcontextprotocol/client";
import { answerOutOfRange } from "./upstreamErrors.js";

/**
 * The JSON-RPC error an upstream's request holding a number no double can hold is answered with
 * (`INVALID_REQUEST`, -32600, as the specification names a request that is not a valid one), on
 * either lane: `path` names where (a JSON Pointer), never the number. Relayed, the request would
 * reach the agent with `null` there; dropped, the upstream waited for its own timeout.
 */
export const requestOutOfRange = (path: string) => ({
  code: INVALID_REQUEST,
  message: `the request holds a number no double can hold (read as Infinity) at '${path}'`,
});

const idOf = (message: JSONRPCMessage): unknown => (message as { id?: unknown }).id;

/**
 * Every message of an upstream's connection, on the SDK client's lane (stdio, legacy SSE, and what
 * a Streamable HTTP session carries but its direct calls: lists, items, completions, tasks, its GET
 * stream), passes here once, parsed: one holding a number `JSON.parse` read as ±Infinity (1e400)
 * never reaches the client as such. Passed on, it reached the registry or the agent as `null`
 * (`JSON.stringify` of Infinity), or pinned so in a definition. So:
 * - an answer becomes a JSON-RPC error for the request it answers, which fails as the upstream's
 *   invalid result naming the path (`answerOutOfRange`, `mapUpstreamError`): a list's fails the
 *   discovery, which then records nothing;
 * - a request is answered -32600 (`requestOutOfRange`), never asked of anyone;
 * - a notification is dropped.
 * One walk of each message, without paths (`holdsNonFiniteNumber`); the path only for one refused.
 * Call after `client.connect`, and before `boundServerRequests` and `guardInbound`, which then bound
 * and count what is refused here too. The handshake before it (initialize, server/discover) holds
 * none: the 2.4.0 client drops unknown members of its server info and capabilities, and refuses a
 * non-finite number in the JSON-valued ones (`experimental`) as an invalid result
 * (finiteNumbers.unit holds it to that).
 */
export function holdFiniteNumbers(transport: Transport, target: string): void {
  const deliver = transport.onmessage;
  if (!deliver) return;
  transport.onmessage = (message, extra) => {
    if (!holdsNonFiniteNumber(message)) return deliver(message, extra);
    const path = nonFiniteNumberPath(message) ?? "";
    const id = idOf(message);
    const identified = typeof id === "string" || typeof id === "number";
    if ("method" in message) {
      // `transport.send` as it is now: the wrappers around it count the answer as sent.
      if (identified) void transport.send({ jsonrpc: "2.0", id, error: requestOutOfRange(path) }).catch(() => undefined);
      return;
    }
    if (identified) deliver({ jsonrpc: "2.0", id, error: answerOutOfRange(target, path) }, extra);
  };
}
