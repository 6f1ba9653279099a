import { Agent, fetch as undiciFetch, type RequestInit as UndiciRequestInit } from "undici";

/**
 * The connections of the SDK's HTTP transports (the SDK lane; the direct caller has its own pools,
 * `sessionPool.ts`). Their own, not the process's shared dispatcher: that one
 * (`Symbol.for("undici.globalDispatcher.1")`) belongs to whichever HTTP stack loaded first, Node
 * 20's bundled undici 6.24 or the `undici` package, and Node's fetch goes through it. Node's own
 * left a request unsettled whose connection was dropped (accepted, then closed without a byte)
 * when it came within ~20 ms of Node loading its fetch: in a fresh process, the first request to a
 * proxy that drops every connection never settled (5 of 5; with undici 7 all did, as the CLI's 80
 * in `cliResend.e2e`), and an SDK client waited its whole timeout. Here undici 7 serves the SDK
 * lane whatever the process loaded first (`droppedFirstRequest.e2e`, `droppedUpstreamConnections.e2e`).
 */
const sdkConnections = new Agent();

/**
 * `fetch` for the SDK's HTTP transports: undici 7's, on `sdkConnections`. Both transports hand
 * their long-lived abort signal (aborted only when the transport closes) to every request they
 * send: `SSEClientTransport._send` always and `StreamableHTTPClientTransport.send` when the request
 * has no signal of its own, i.e. every 2025-era request (@modelcontextprotocol/client 2.4.0,
 * dist/index.mjs lines 1221 and 1716). fetch adds an abort listener to the signal it is given per
 * request, removed only when that request is garbage collected: on a long-lived signal they pile
 * up (past 1,500 Node warns MaxListenersExceededWarning). So each request gets a signal of its own
 * that follows the long-lived one (`following`). The SDK reads what it gets back as a WHATWG Response (status, `headers.get`, `body.getReader()`,
 * `text()`, `json()`): undici's is one, as Node's is (Node's fetch is undici's).
 */
export function sdkFetch(url: string | URL, init?: RequestInit): Promise<Response> {
  const signal = init?.signal ? following(init.signal) : init?.signal;
  // The SDK's Headers and body are Node's (web) types, which undici's fetch takes as any fetch does.
  // No redirect is followed, as the direct caller follows none: fetch strips only `authorization` on
  // the way to another origin, so a registration's `x-api-key` went wherever a 307 pointed. The SDK
  // fails the request on the 3xx (register the upstream's final URL).
  const options = { ...(init as UndiciRequestInit | undefined), redirect: "manual" as const, ...(signal === undefined ? {} : { signal }), dispatcher: sdkConnections };
  return undiciFetch(url, options) as unknown as Promise<Response>;
}

/** A request's own signal, and the controller that aborts it (kept alive as long as the signal is). */
const controllers = new WeakMap<AbortSignal, AbortController>();
/** A long-lived signal's followers, each held weakly, and dropped once it is collected. */
const followers = new WeakMap<AbortSignal, Set<WeakRef<AbortSignal>>>();
const forget = new FinalizationRegistry<{ of: Set<WeakRef<AbortSignal>>; ref: WeakRef<AbortSignal> }>(({ of, ref }) => of.delete(ref));

/**
 * A signal of its own for one request, aborted with `transport`: one listener on `transport` for
 * all its requests. Not `AbortSignal.any([transport])`: Node 20 (20.20.2 measured) keeps a weak
 * reference to each signal it makes in a set on `transport`, never pruned until `transport`
 * aborts, so a session's signal held one per request it ever sent (~55 bytes a request for the
 * session's life: 200,000 requests +10.2 MB; sdkFetch.unit). Here a follower is dropped from the
 * set by a finalizer once it is collected (the same 200,000: ~1 MB, not growing).
 */
export function following(transport: AbortSignal): AbortSignal {
  if (transport.aborted) return AbortSignal.abort(transport.reason);
  let of = followers.get(transport);
  if (!of) {
    const set = (of = new Set());
    followers.set(transport, set);
    transport.addEventListener(
      "abort",
      () => {
        for (const ref of set) {
          const signal = ref.deref();
          if (signal) controllers.get(signal)?.abort(transport.reason);
        }
        set.clear();
      },
      { once: true },
    );
  }
  const controller = new AbortController();
  const ref = new WeakRef(controller.signal);
  controllers.set(controller.signal, controller);
  of.add(ref);
  forget.register(controller.signal, { of, ref });
  return controller.signal;
}
