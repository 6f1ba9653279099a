import type { z } from "zod";

/**
 * Header names the HTTP client and the MCP transport own on the upstream hop (lower case): the
 * request's framing and hop-by-hop fields, the content negotiation the transport does, and MCP's
 * own session, version and routing headers. Neither a registration's headers nor an agent's
 * pass-through headers may set them: an agent's `Mcp-Session-Id` went out beside the connector's
 * and named another session at the upstream (another caller's, signed in as someone else), and a
 * `Host` or `Content-Length` re-routes or re-frames the request.
 */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  "host",
  "content-length",
  "content-type",
  "content-encoding",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "proxy-connection",
  "upgrade",
  "te",
  "trailer",
  "expect",
  "accept",
  "last-event-id",
  "mcp-session-id",
  "mcp-protocol-version",
  "mcp-method",
  "mcp-name",
]);

export const isReservedHeader = (name: string): boolean => RESERVED_HEADERS.has(name.toLowerCase()) || name.toLowerCase().startsWith("mcp-param-");

/** Refuses reserved header names in a list or a map's keys; the message names the header. */
export const noReservedHeaders =
  (where: string) =>
  (value: readonly string[] | Record<string, unknown>, ctx: z.RefinementCtx): void => {
    for (const name of Array.isArray(value) ? value : Object.keys(value)) {
      if (isReservedHeader(name)) {
        ctx.addIssue({ code: "custom", message: `${where} may not name '${name}': the transport sets it on the upstream hop` });
      }
    }
  };
