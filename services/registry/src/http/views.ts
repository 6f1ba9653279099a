import type { UpstreamState, VirtualServerState } from "@manifold/domain";

/** What the admin API shows of an upstream. Transport header values are never echoed. */
export function upstreamView(u: UpstreamState) {
  const transport =
    u.transport.type === "stdio"
      ? { ...u.transport, env: Object.fromEntries(Object.keys(u.transport.env).map((k) => [k, "[redacted]"])) }
      : { ...u.transport, headers: Object.fromEntries(Object.keys(u.transport.headers).map((k) => [k, "[redacted]"])) };
  return {
    name: u.name,
    description: u.description,
    version: u.version,
    transport,
    serverInfo: u.serverInfo,
    tools: [...u.tools.values()].map((t) => ({ name: t.definition.name, hash: t.hash, definition: t.definition })),
  };
}

export function virtualServerView(vs: VirtualServerState) {
  return {
    name: vs.name,
    description: vs.description,
    version: vs.version,
    tools: [...vs.tools.values()],
  };
}
