import type { UpstreamTransport } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { SSEClientTransport, StreamableHTTPClientTransport, type Transport } from "@modelcontextprotocol/client";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/client/stdio";
import { logStderr } from "./stderrLog.js";
import { credentialValues, echoForms, withholdRecordedLiterals, withholdResolved, type EchoForm } from "./withheldValues.js";
import { descendantsOf, killAll, markedProcesses, TREE_MARK } from "./processTree.js";
import { randomUUID } from "node:crypto";
import type { ChildProcess } from "node:child_process";
import type { PassThrough } from "node:stream";
import { ManifoldError, resolveSecrets, stdioIssues, type ScopedSecrets, type StdioPolicy } from "@manifold/contracts";
import { boundedBody, boundedEvents } from "./boundedAnswers.js";
import { ANSWER_SLACK, PUSHBACK_STATUSES, UpstreamHttpStatus } from "./upstreamErrors.js";
import { retryAfterMs } from "./retryAfter.js";
import { sessionHeaders, withoutServiceCredential } from "./sessionHeaders.js";
import { countSkippedLines, InboundBudget, SESSION_INBOUND } from "./inboundBudget.js";
import { endsWithStream } from "./sseEventSource.js";
import { AbandonedRequests } from "./abandonedRequests.js";
import { sdkFetch } from "./sdkFetch.js";

/**
 * Builds the SDK client transport for an upstream, resolving its credential references now
 * (so rotation takes effect on the next connection). `extraHeaders` are one caller's headers
 * (pass-through, or its own token on a per-user upstream), for the sessions of that credential set
 * only; absent for the shared session (`sessionHeaders`).
 */
export interface OpenedTransport {
  transport: Transport;
  /** The credential values this transport sends the upstream (its secrets, a caller's credential headers): its results are cleaned of them. */
  credentials: readonly EchoForm[];
  /** For Streamable HTTP: where calls may go directly (either era), with every header already resolved. */
  http?: { url: URL; headers: Record<string, string> };
  /** What the session may send of its own (`guardInbound`); its SSE streams' empty events count too. */
  inbound: InboundBudget;
  /** For stdio: how its process ended ("its process exited with code 1"), once it has. */
  exit?: () => string | undefined;
}

/** The most any NATS server carries in one message (its `max_payload` cannot be set higher). */
export const MAX_BUS_PAYLOAD = 64 * 1024 * 1024;
/** A Response of these statuses cannot be made with a body, and they carry none to bound. */
const NO_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * The SDK's HTTP transports read a JSON answer whole, and an SSE event until its blank line,
 * however long the upstream makes it. Anything past one bus message could not be passed on
 * anyway: a JSON body that outgrows `maxBytes` fails as `payload_too_large`, an SSE event that
 * does is dropped (`boundedEvents`), before either grows in memory.
 */
function boundedAnswers(maxBytes: number, inbound: InboundBudget) {
  const unasked = () => inbound.take();
  return async (url: string | URL, init?: RequestInit): Promise<Response> => {
    const response = await sdkFetch(url, init);
    // The SDK's own error for a refused POST keeps its status and drops the rest: a 429's or 503's
    // `Retry-After` (what the agent is told and how long the circuit stays open) is read here, as the
    // direct caller reads it, and its page is never read at all.
    if (init?.method === "POST" && PUSHBACK_STATUSES.has(response.status)) {
      await response.body?.cancel().catch(() => undefined);
      throw new UpstreamHttpStatus(response.status, retryAfterMs(response.headers.get("retry-after") ?? undefined));
    }
    if (!response.body || NO_BODY.has(response.status)) return response;
    const sse = (response.headers.get("content-type") ?? "").includes("text/event-stream");
    const bounded = response.body.pipeThrough(sse ? boundedEvents(maxBytes, unasked) : boundedBody(maxBytes));
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

/** How long output the process wrote before it exited may still be read from its pipes. */
const EXIT_DRAIN_MS = 200;

/**
 * A stdio upstream's process, and what it started, live as long as its connection and no longer.
 * - The SDK ends a connection when the process's pipes close, and a process that started a helper
 *   sharing its stdout (`sh -c 'helper & exec server'`) leaves them open when it dies: the
 *   connector never noticed, reported the upstream up and let every call wait its whole budget.
 *   Here the connection ends when the process exits: our ends of its pipes are closed once what it
 *   wrote has been read, and the SDK's close follows.
 * - Closing signals only the process itself: a helper it started (and that ignores SIGTERM)
 *   outlived a deleted upstream and a stopped connector, one more at each restart. Its
 *   descendants, found before it is ended, are killed after it. (One that left its tree, with
 *   `setsid` and a double fork, is out of reach: docs/security.md.)
 * - A process that exits by itself leaves its helpers re-parented, no longer its descendants: one
 *   more at each restart. They are found by the environment variable it was started with (`mark`)
 *   and killed when it exits (and at close, with its descendants).
 * The instance's own `start` and `close`: a subclass would change how the SDK probes the era.
 */
function endWithProcess(transport: StdioClientTransport, mark: string): void {
  const close = transport.close.bind(transport);
  transport.close = async () => {
    const pid = transport.pid;
    const descendants = pid === null ? [] : descendantsOf(pid);
    await close();
    killAll(descendants);
    killAll(await markedProcesses(mark));
  };
  const start = transport.start.bind(transport);
  transport.start = async () => {
    await start();
    const child = (transport as unknown as { _process?: ChildProcess })._process;
    child?.once("exit", () => {
      void markedProcesses(mark).then(killAll);
      setTimeout(() => {
        for (const pipe of [child.stdin, child.stdout, child.stderr]) pipe?.destroy();
      }, EXIT_DRAIN_MS).unref();
    });
  };
}

const NO_STDIO: StdioPolicy = Object.freeze({ commands: [] });

export interface TransportOptions {
  /** The era is known to be modern, so a stdio upstream is spawned once, not probed on a sibling. */
  inPlaceProbe?: boolean | undefined;
  /** The most an HTTP answer (or one SSE event) may hold (`boundedAnswers`). */
  maxAnswerBytes?: number | undefined;
  /** What the session may send of its own in a second (`InboundBudget`). */
  inboundPerSecond?: number | undefined;
  /** How long a connection's handshake may take (`CONNECT_TIMEOUT_MS`): a legacy SSE upstream's endpoint too (`endpointBounded`), and a message answered 202 (`AbandonedRequests`). */
  connectTimeoutMs: number;
}

export async function createTransport(
  spec: UpstreamTransport,
  secrets: ScopedSecrets,
  logger: Logger,
  extraHeaders: Readonly<Record<string, string>> | undefined,
  options: TransportOptions,
): Promise<OpenedTransport> {
  const { inPlaceProbe = false, maxAnswerBytes = MAX_BUS_PAYLOAD, inboundPerSecond = SESSION_INBOUND.perSecond, connectTimeoutMs } = options;
  const recordedLiterals = withholdRecordedLiterals(spec);
  switch (spec.type) {
    case "stdio": {
      // The registry refuses these too; a registration recorded before the list (or by a registry
      // given a longer one) must still not run here. Checked before any secret is resolved for it.
      const refused = stdioIssues(spec, secrets.stdio ?? NO_STDIO);
      if (refused.length > 0) throw new ManifoldError("upstream_unavailable", `the connector refuses to start this stdio upstream: ${refused.map((i) => i.message).join("; ")}`);
      const Transport = inPlaceProbe ? InPlaceProbeStdioTransport : StdioClientTransport;
      const secretEnv = await resolveSecrets(spec.secretEnv, secrets, "env");
      withholdResolved(spec.secretEnv, secretEnv);
      const mark = randomUUID();
      const transport = new Transport({
        command: spec.command,
        args: spec.args,
        env: { ...getDefaultEnvironment(), ...spec.env, ...secretEnv, [TREE_MARK]: mark },
        ...(spec.cwd ? { cwd: spec.cwd } : {}),
        stderr: "pipe",
      });
      // The SDK hands out a PassThrough when stderr is "pipe". An upstream's stderr is its
      // log: kept, attributed to the upstream, bounded and without the secrets it was given, those
      // a registration recorded as literals before the registry refused them included.
      const stderr = transport.stderr as PassThrough | null;
      if (stderr) logStderr(stderr, logger, [...Object.values(secretEnv), ...recordedLiterals]);
      endWithProcess(transport, mark);
      const child = () => (transport as unknown as { _process?: ChildProcess })._process;
      const inbound = new InboundBudget(inboundPerSecond, () => {
        child()?.stdout?.destroy();
        child()?.kill("SIGKILL");
      });
      // How the process ended: the SDK reports only "Connection closed", for a process that exited
      // at start (a crash loop) as for one that closed its stdout. Code and signal quote nothing.
      let exit: string | undefined;
      const start = transport.start.bind(transport);
      transport.start = async () => {
        await start();
        child()?.once("exit", (code, signal) => (exit = signal ? `its process was killed by ${signal}` : `its process exited with code ${code}`));
        const stdout = child()?.stdout;
        if (stdout) countSkippedLines(stdout, inbound);
      };
      return { transport, credentials: echoForms(Object.values(secretEnv)), inbound, exit: () => exit };
    }
    case "streamable-http":
    case "sse": {
      // Not even resolved for a session that must not send them.
      const secretHeaders = withoutServiceCredential(spec, extraHeaders) ? {} : await resolveSecrets(spec.secretHeaders, secrets, "header");
      withholdResolved(spec.secretHeaders, secretHeaders);
      const headers = sessionHeaders(spec, secretHeaders, extraHeaders);
      const url = new URL(spec.url);
      const inbound = new InboundBudget(inboundPerSecond);
      const fetch = boundedAnswers(maxAnswerBytes + ANSWER_SLACK, inbound);
      const credentials = echoForms([...Object.values(secretHeaders), ...credentialValues(extraHeaders ?? {})]);
      // What the upstream is asked and then given up on ends its connection; a message answered 202 is bounded by the handshake's bound.
      const abandoned = new AbandonedRequests(connectTimeoutMs);
      const transport =
        spec.type === "sse"
          ? endpointBounded(endsWithStream(new SSEClientTransport(url, { requestInit: { headers }, fetch: abandoned.legacyPosts(fetch), eventSourceInit: { fetch: pacedStreams(fetch) } })), connectTimeoutMs)
          : new StreamableHTTPClientTransport(url, { requestInit: { headers }, fetch, reconnectionScheduler: pacedReconnections() });
      abandoned.follow(transport);
      return spec.type === "sse" ? { transport, credentials, inbound } : { transport, http: { url, headers }, credentials, inbound };
    }
  }
}

/**
 * A legacy SSE transport whose start ends: the SDK's waits for the upstream's `endpoint` event with
 * no bound, and closing the transport does not end that wait. An upstream that opened its stream
 * and never named its endpoint held its connection attempt for good, and with it the connector's
 * reconciliation (its removal awaited the attempt): no later registration on the connector was
 * served, and shutdown hung (`test/e2e/hostileSseStart.e2e.spec.ts`). Now the start fails at
 * `timeoutMs`, the handshake's bound `CONNECT_TIMEOUT_MS` (the session backs off and tries again),
 * or when the transport closes. That bound is the SDK's for `initialize` only, which comes after:
 * a fixed 60 s here left such an upstream "connecting", with no reason and no other attempt, for a
 * minute per attempt whatever `CONNECT_TIMEOUT_MS` said.
 */
export function endpointBounded(transport: SSEClientTransport, timeoutMs: number): SSEClientTransport {
  const start = transport.start.bind(transport);
  const close = transport.close.bind(transport);
  let abandon: ((reason: Error) => void) | undefined;
  transport.close = async () => {
    abandon?.(new Error("the transport closed before the upstream named its endpoint"));
    await close();
  };
  transport.start = async () => {
    let timer: NodeJS.Timeout | undefined;
    const ended = new Promise<never>((_, reject) => {
      abandon = reject;
      timer = setTimeout(() => reject(new Error(`the upstream did not name its SSE endpoint within ${timeoutMs} ms (CONNECT_TIMEOUT_MS)`)), timeoutMs);
    });
    try {
      await Promise.race([start(), ended]);
    } catch (error) {
      await close();
      throw error;
    } finally {
      clearTimeout(timer);
      abandon = undefined;
    }
  };
  return transport;
}

type Fetch = (url: string | URL, init?: RequestInit) => Promise<Response>;

/**
 * The GETs of a legacy SSE transport's event stream (`eventSourceInit.fetch`: the SDK uses it for
 * nothing else), paced as a Streamable HTTP session's reconnections are (`pacedReconnections`):
 * the EventSource under the SDK's SSE transport opens a dropped stream again after what the
 * upstream's `retry:` says, by itself. An upstream that said `retry: 0` and ended each stream at
 * once was asked 1,166 times in 3 s, on the event loop every tenant shares, for as long as its
 * session lived. The first GET goes at once; each later one waits its turn, or ends unsent when
 * the transport closes meanwhile (the EventSource's abort, which it takes for no error).
 */
export function pacedStreams(fetch: Fetch): Fetch {
  const schedule = pacedReconnections();
  let opened = false;
  return async (url: string | URL, init?: RequestInit) => {
    if (opened) {
      const signal = init?.signal;
      await new Promise<void>((resolve, reject) => {
        signal?.throwIfAborted();
        const cancel = schedule(resolve, 0);
        signal?.addEventListener("abort", () => (cancel(), reject(signal.reason as Error)), { once: true });
      });
    }
    opened = true;
    return fetch(url, init);
  };
}

/** The least and most a session waits before it opens a dropped SSE stream again. */
const RECONNECT_MIN_MS = 1_000;
const RECONNECT_MAX_MS = 30_000;
/** A stream that stayed open this long was not a loop: the next reconnection waits the least again. */
const RECONNECT_SETTLED_MS = 10_000;

/**
 * Reconnections of one session's SSE streams, paced here: the SDK waits what the server's `retry:`
 * says (0 from a hostile upstream) and starts its count over at every stream that ends normally,
 * so a server answering each GET with `retry: 0` and an empty stream had the connector reconnect
 * in a loop (1,064 GETs in 3 s, per session, on the event loop every tenant shares). Consecutive
 * reconnections wait 1 s, 2 s, 4 s … up to 30 s; a stream that stayed open 10 s starts over (a
 * server that ends its streams every 30 s, SSE polling, is reconnected after 1 s each time).
 */
export function pacedReconnections(): (reconnect: () => void, delay: number) => () => void {
  let next = RECONNECT_MIN_MS;
  let reconnectedAt = 0;
  return (reconnect, delay) => {
    if (Date.now() - reconnectedAt > RECONNECT_SETTLED_MS) next = RECONNECT_MIN_MS;
    const wait = Math.min(Math.max(delay, next), RECONNECT_MAX_MS);
    next = Math.min(next * 2, RECONNECT_MAX_MS);
    reconnectedAt = Date.now() + wait;
    const timer = setTimeout(reconnect, wait);
    return () => clearTimeout(timer);
  };
}
