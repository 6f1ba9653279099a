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
 * up (past 1,500 Node warns MaxListenersExceededWarning). `AbortSignal.any` follows the long-lived
 * signal without a listener on it, so each request's listener lands on a signal of its own.
 * The SDK reads what it gets back as a WHATWG Response (status, `headers.get`, `body.getReader()`,
 * `text()`, `json()`): undici's is one, as Node's is (Node's fetch is undici's).
 */
export function sdkFetch(url: string | URL, init?: RequestInit): Promise<Response> {
  const signal = init?.signal ? AbortSignal.any([init.signal]) : init?.signal;
  // The SDK's Headers and body are Node's (web) types, which undici's fetch takes as any fetch does.
  const options = { ...(init as UndiciRequestInit | undefined), ...(signal === undefined ? {} : { signal }), dispatcher: sdkConnections };
  return undiciFetch(url, options) as unknown as Promise<Response>;
}
