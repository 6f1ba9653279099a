import type { UpstreamTransport } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { SSEClientTransport, StreamableHTTPClientTransport, type Transport } from "@modelcontextprotocol/client";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/client/stdio";
import { createInterface } from "node:readline";
import type { PassThrough } from "node:stream";
import { resolveSecrets, type ScopedSecrets } from "./credentials.js";

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

export async function createTransport(
  spec: UpstreamTransport,
  secrets: ScopedSecrets,
  logger: Logger,
  extraHeaders: Readonly<Record<string, string>> = {},
): Promise<OpenedTransport> {
  switch (spec.type) {
    case "stdio": {
      const transport = new StdioClientTransport({
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
        ? { transport: new SSEClientTransport(url, { requestInit: { headers } }) }
        : { transport: new StreamableHTTPClientTransport(url, { requestInit: { headers } }), http: { url, headers } };
    }
  }
}
