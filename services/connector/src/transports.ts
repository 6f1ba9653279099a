import type { UpstreamTransport } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { SSEClientTransport, StreamableHTTPClientTransport, type Transport } from "@modelcontextprotocol/client";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/client/stdio";
import { createInterface } from "node:readline";
import type { PassThrough } from "node:stream";
import { resolveSecrets, type ScopedSecrets } from "@manifold/contracts";

/**
 * Builds the SDK client transport for an upstream, resolving its credential references now
 * (so rotation takes effect on the next connection). `extraHeaders` are one agent's
 * pass-through headers, for the sessions of that credential set only.
 */
export interface OpenedTransport {
  transport: Transport;
  /** For Streamable HTTP: where calls may go directly (either era), with every header already resolved. */
  http?: { url: URL; headers: Record<string, string> };
}

/**
 * `fetch` for the SDK's HTTP transports. Both hand their long-lived abort signal (aborted only
 * when the transport closes) to every request they send: `SSEClientTransport._send` always and
 * `StreamableHTTPClientTransport.send` when the request has no signal of its own, i.e. every
 * 2025-era request (@modelcontextprotocol/client 2.4.0, dist/index.mjs lines 1221 and 1716).
 * Node's fetch adds an abort listener to the signal it is given per request, removed only when
 * that request is garbage collected: on a long-lived signal they pile up (past 1,500 Node warns
 * MaxListenersExceededWarning). `AbortSignal.any` follows the long-lived signal without a
 * listener on it, so each request's listener lands on a signal of its own.
 */
const perRequestSignal = (url: string | URL, init?: RequestInit): Promise<Response> =>
  fetch(url, init?.signal ? { ...init, signal: AbortSignal.any([init.signal]) } : init);

/**
 * The SDK probes the era of its own `StdioClientTransport` on a short-lived sibling process;
 * any subclass it probes in place, on the one process. That is right when the era is already
 * known to be 2026-07-28 (the probe is then a plain `server/discover` every such server answers),
 * and saves the second process.
 */
class InPlaceProbeStdioTransport extends StdioClientTransport {}

/** `inPlaceProbe`: the era is known to be modern, so a stdio upstream is spawned once, not probed on a sibling. */
export async function createTransport(
  spec: UpstreamTransport,
  secrets: ScopedSecrets,
  logger: Logger,
  extraHeaders: Readonly<Record<string, string>> = {},
  inPlaceProbe = false,
): Promise<OpenedTransport> {
  switch (spec.type) {
    case "stdio": {
      const Transport = inPlaceProbe ? InPlaceProbeStdioTransport : StdioClientTransport;
      const transport = new Transport({
        command: spec.command,
        args: spec.args,
        env: { ...getDefaultEnvironment(), ...spec.env, ...(await resolveSecrets(spec.secretEnv, secrets, "env")) },
        ...(spec.cwd ? { cwd: spec.cwd } : {}),
        stderr: "pipe",
      });
      // The SDK hands out a PassThrough when stderr is "pipe". An upstream's stderr is its
      // log: keep it, attributed to the upstream.
      const stderr = transport.stderr as PassThrough | null;
      if (stderr) createInterface({ input: stderr }).on("line", (line) => logger.info({ stream: "stderr" }, line));
      return { transport };
    }
    case "streamable-http":
    case "sse": {
      const headers = { ...spec.headers, ...(await resolveSecrets(spec.secretHeaders, secrets, "header")), ...extraHeaders };
      const url = new URL(spec.url);
      return spec.type === "sse"
        ? { transport: new SSEClientTransport(url, { requestInit: { headers }, fetch: perRequestSignal }) }
        : { transport: new StreamableHTTPClientTransport(url, { requestInit: { headers }, fetch: perRequestSignal }), http: { url, headers } };
    }
  }
}
