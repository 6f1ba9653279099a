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

/** The most any NATS server carries in one message (its `max_payload` cannot be set higher). */
const MAX_BUS_PAYLOAD = 64 * 1024 * 1024;
/** The JSON-RPC envelope around an answer that fits a bus message may take this much more. */
const ANSWER_SLACK = 64 * 1024;

const NO_BODY = new Set([101, 103, 204, 205, 304]);
const LF = 10;
const CR = 13;

/**
 * The SDK's HTTP transports read a JSON answer whole, and an SSE event until its blank line,
 * however long the upstream makes it. Anything past one bus message could not be passed on
 * anyway: a JSON body, or one event of a stream (a stream itself may go on for as long as it
 * runs), that outgrows `maxBytes` errors the response there instead of growing in memory.
 */
function boundedAnswers(maxBytes: number) {
  return async (url: string | URL, init?: RequestInit): Promise<Response> => {
    const response = await perRequestSignal(url, init);
    // (A Response of these statuses cannot be made with a body, and they carry none to bound.)
    if (!response.body || NO_BODY.has(response.status)) return response;
    const sse = (response.headers.get("content-type") ?? "").includes("text/event-stream");
    let size = 0;
    /** SSE: the bytes of the current line, and whether the last byte was a CR (a CRLF is one line ending). */
    let line = 0;
    let afterCr = false;
    const bounded = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          if (!sse) size += chunk.length;
          else {
            for (const byte of chunk) {
              if (byte === LF && afterCr) afterCr = false;
              else if (byte === LF || byte === CR) {
                // A line ending on an empty line is a blank line: the event ends there.
                if (line === 0) size = 0;
                line = 0;
                afterCr = byte === CR;
              } else {
                line++;
                size++;
                afterCr = false;
              }
            }
          }
          if (size > maxBytes) controller.error(new Error(`the upstream's answer is more than ${maxBytes} bytes, more than the message bus carries`));
          else controller.enqueue(chunk);
        },
      }),
    );
    return new Response(bounded, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

/**
 * The SDK probes the era of its own `StdioClientTransport` on a short-lived sibling process;
 * any subclass it probes in place, on the one process. That is right when the era is already
 * known to be 2026-07-28 (the probe is then a plain `server/discover` every such server answers),
 * and saves the second process.
 */
class InPlaceProbeStdioTransport extends StdioClientTransport {}

/**
 * `inPlaceProbe`: the era is known to be modern, so a stdio upstream is spawned once, not probed on
 * a sibling. `maxAnswerBytes`: the most an HTTP answer (or one SSE event) may hold (`boundedAnswers`).
 */
export async function createTransport(
  spec: UpstreamTransport,
  secrets: ScopedSecrets,
  logger: Logger,
  extraHeaders: Readonly<Record<string, string>> = {},
  inPlaceProbe = false,
  maxAnswerBytes = MAX_BUS_PAYLOAD,
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
      const fetch = boundedAnswers(maxAnswerBytes + ANSWER_SLACK);
      return spec.type === "sse"
        ? { transport: new SSEClientTransport(url, { requestInit: { headers }, fetch }) }
        : { transport: new StreamableHTTPClientTransport(url, { requestInit: { headers }, fetch }), http: { url, headers } };
    }
  }
}
