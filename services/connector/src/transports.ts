import type { UpstreamTransport } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { createInterface } from "node:readline";
import type { PassThrough } from "node:stream";

/** Builds the SDK client transport for an upstream's registration. */
export function createTransport(spec: UpstreamTransport, logger: Logger): Transport {
  switch (spec.type) {
    case "stdio": {
      const transport = new StdioClientTransport({
        command: spec.command,
        args: spec.args,
        env: { ...getDefaultEnvironment(), ...spec.env },
        ...(spec.cwd ? { cwd: spec.cwd } : {}),
        stderr: "pipe",
      });
      // The SDK hands out a PassThrough when stderr is "pipe".
      const stderr = transport.stderr as PassThrough | null;
      // An upstream's stderr is its log: keep it, attributed to the upstream.
      if (stderr) createInterface({ input: stderr }).on("line", (line) => logger.info({ stream: "stderr" }, line));
      return transport;
    }
    case "streamable-http":
      return new StreamableHTTPClientTransport(new URL(spec.url), { requestInit: { headers: spec.headers } });
    case "sse":
      return new SSEClientTransport(new URL(spec.url), { requestInit: { headers: spec.headers } });
  }
}
