import { z } from "zod";

/**
 * Names of upstreams and virtual servers become NATS subject tokens and URL path
 * segments, so they are restricted to DNS-label characters.
 */
export const ResourceName = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, {
    message: "must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
  });
export type ResourceName = z.infer<typeof ResourceName>;

/** What an upstream may call its tools (MCP spec: 1-128 of [A-Za-z0-9_.-]); we accept anything printable. */
export const UpstreamToolName = z.string().min(1).max(256);

export const EXPOSED_NAME_MAX = 64;
/** What agents see. Model providers accept only this charset and length in tool names. */
export const EXPOSED_NAME = /^[A-Za-z0-9_-]{1,64}$/;
export const ExposedToolName = z.string().regex(EXPOSED_NAME, { message: "must be 1-64 characters of [A-Za-z0-9_-]" });
