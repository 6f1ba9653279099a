import { z } from "zod";

/**
 * A secret is never written to the registry: an upstream's registration names where the
 * connector finds it at run time, `env:NAME` (the connector's environment) or `file:/path`.
 */
export const CredentialRef = z
  .string()
  .regex(/^(env:[A-Za-z_][A-Za-z0-9_]*|file:\/\S+)$/, { message: "must be a credential reference: env:NAME or file:/absolute/path" });
export type CredentialRef = z.infer<typeof CredentialRef>;

export const HeaderName = z.string().regex(/^[A-Za-z0-9-]+$/, { message: "must be an HTTP header name" });
const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: "must be an environment variable name" });

/** Names that carry credentials by convention; their values must be references, never literals. */
const SENSITIVE = /authorization|cookie|token|secret|password|passwd|api[-_]?key|credential|session/i;
const noLiteralSecrets = (what: string) => (map: Record<string, string>, ctx: z.RefinementCtx) => {
  for (const name of Object.keys(map)) {
    if (SENSITIVE.test(name)) {
      ctx.addIssue({
        code: "custom",
        path: [name],
        message: `${what} '${name}' looks like a credential: put it in ${what === "header" ? "secretHeaders" : "secretEnv"} as a reference (env:NAME or file:/path)`,
      });
    }
  }
};

const HttpFields = {
  url: z.url({ protocol: /^https?$/ }),
  /** Plain, non-secret headers sent on every request. */
  headers: z.record(HeaderName, z.string()).default({}).superRefine(noLiteralSecrets("header")),
  /** Headers whose values the connector resolves from references. */
  secretHeaders: z.record(HeaderName, CredentialRef).default({}),
};

export const StdioTransport = z.strictObject({
  type: z.literal("stdio"),
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(EnvName, z.string()).default({}).superRefine(noLiteralSecrets("variable")),
  secretEnv: z.record(EnvName, CredentialRef).default({}),
  cwd: z.string().optional(),
});

export const StreamableHttpTransport = z.strictObject({ type: z.literal("streamable-http"), ...HttpFields });
export const SseTransport = z.strictObject({ type: z.literal("sse"), ...HttpFields });

export const UpstreamTransport = z.discriminatedUnion("type", [StdioTransport, StreamableHttpTransport, SseTransport]);
export type UpstreamTransport = z.infer<typeof UpstreamTransport>;

/** How the connectors treat an upstream; every field has a service-wide default. */
export const UpstreamOptions = z.strictObject({
  /** Header names an agent may pass through to this upstream per request (HTTP transports only). */
  passthroughHeaders: z.array(HeaderName).optional(),
  /** Time budget of one call to this upstream. */
  callTimeoutMs: z.number().int().positive().max(3_600_000).optional(),
  /** Calls in flight to this upstream per connector replica; more wait in a queue. */
  maxConcurrency: z.number().int().positive().max(10_000).optional(),
});
export type UpstreamOptions = z.infer<typeof UpstreamOptions>;

export const DEFAULT_PASSTHROUGH_HEADERS = ["authorization"] as const;
/** A transport as an admin writes it, before defaults are applied. */
export type UpstreamTransportInput = z.input<typeof UpstreamTransport>;
