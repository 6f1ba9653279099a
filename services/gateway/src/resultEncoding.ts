import type { Visible, VirtualServerView } from "./catalog.js";
import type { JsonRpcError } from "./jsonRpc.js";
import type { Era } from "@manifold/contracts";

type Id = string | number;

/** Who answers, as every 2026-07-28 result names it (`_meta`), and how long a list may be cached. */
export interface ServerIdentity {
  name: string;
  version: string;
}

const SERVER_INFO = "io.modelcontextprotocol/serverInfo";

/**
 * The bytes of the fast path's answers, per era, written as the SDK of that era would write
 * them (the end-to-end suites run with the fast path on and off to keep it so). A 2026-07-28
 * result carries `resultType` and the server's identity; a cacheable one `ttlMs`/`cacheScope`.
 * Lists are encoded once per view and caller kind; call results are spliced, not re-parsed.
 */
export class ResultEncoding {
  readonly #ttlMs: number;
  readonly #modernLists = new WeakMap<Visible, Buffer>();
  /** A 2026-07-28 result's leading members, by server identity (one per virtual server): made once, not stringified per call. */
  readonly #modernFields = new WeakMap<ServerIdentity, string>();

  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs;
  }

  /** The `result` of tools/list for this caller. */
  list(era: Era, view: VirtualServerView, visible: Visible, server: ServerIdentity): Buffer {
    if (era === "legacy") return visible.list;
    let bytes = this.#modernLists.get(visible);
    if (!bytes) {
      // The 2026-07-28 Tool has no `execution` (tasks moved to the extension): left out, as the SDK
      // lane's encoder leaves it out (`enforceDeletedFields`). Spliced as pinned, the wire differed
      // with the fast path on and off (modernToolFields.e2e). Once per view and denied set.
      const tools = visible.tools.map(({ execution: _, ...tool }) => tool);
      const tail = `,"ttlMs":${this.#ttlMs},"cacheScope":"${view.cacheScope}","resultType":"complete","_meta":${JSON.stringify({ [SERVER_INFO]: server })}}`;
      bytes = Buffer.from(JSON.stringify({ tools }).slice(0, -1) + tail);
      this.#modernLists.set(visible, bytes);
    }
    return bytes;
  }

  /** A response around result bytes: head and tail to write on either side of them. */
  envelope(id: Id): [string, string] {
    return [`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":`, "}"];
  }

  /** A tools/call result as the connector sent it (JSON text of a CallToolResult), in the era's shape. */
  callResult(era: Era, id: Id, text: string, server: ServerIdentity): string {
    const [head, tail] = this.envelope(id);
    if (era === "legacy") return head + text + tail;
    // The common case is spliced; a result with its own `_meta` or `resultType` (the text may
    // merely mention them) is merged the way the SDK merges it: the server's identity added.
    if (text.includes('"_meta"') || text.includes('"resultType"')) {
      const result = JSON.parse(text) as Record<string, unknown>;
      const meta = typeof result._meta === "object" && result._meta !== null ? result._meta : {};
      return head + JSON.stringify({ ...result, resultType: result.resultType ?? "complete", _meta: { ...meta, [SERVER_INFO]: server } }) + tail;
    }
    let fields = this.#modernFields.get(server);
    if (fields === undefined) this.#modernFields.set(server, (fields = `{"resultType":"complete","_meta":{"${SERVER_INFO}":${JSON.stringify(server)}}`));
    // The text is the upstream's own when the connector could pass it on (spacing kept): `{ }` is empty too.
    const members = text.slice(1).trimStart();
    return head + fields + (members.startsWith("}") ? members : "," + members) + tail;
  }

  failure(id: Id, error: JsonRpcError): string {
    return JSON.stringify({ jsonrpc: "2.0", id, error: { code: error.code, message: error.message, ...(error.data ? { data: error.data } : {}) } });
  }
}
