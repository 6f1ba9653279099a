import { z } from "zod";

const HeaderMap = z.record(z.string().regex(/^[A-Za-z0-9-]+$/), z.string());

export const StdioTransport = z.strictObject({
  type: z.literal("stdio"),
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
  cwd: z.string().optional(),
});

export const StreamableHttpTransport = z.strictObject({
  type: z.literal("streamable-http"),
  url: z.url({ protocol: /^https?$/ }),
  headers: HeaderMap.default({}),
});

export const SseTransport = z.strictObject({
  type: z.literal("sse"),
  url: z.url({ protocol: /^https?$/ }),
  headers: HeaderMap.default({}),
});

export const UpstreamTransport = z.discriminatedUnion("type", [
  StdioTransport,
  StreamableHttpTransport,
  SseTransport,
]);
export type UpstreamTransport = z.infer<typeof UpstreamTransport>;
