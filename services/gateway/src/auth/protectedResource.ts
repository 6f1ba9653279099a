import type { CatalogProjection } from "@manifold/domain";
import type { FastifyInstance, FastifyRequest } from "fastify";

/** RFC 9728 §3: the metadata of `https://host/mcp/vs` is at `https://host/.well-known/oauth-protected-resource/mcp/vs`. */
export const METADATA_PREFIX = "/.well-known/oauth-protected-resource";

type Reached = Pick<FastifyRequest, "headers" | "url" | "socket">;

/**
 * Where this gateway is reached: `GATEWAY_PUBLIC_URL` when set (behind a proxy it must be).
 * Without it, where only named hosts are served (loopback, or `GATEWAY_ALLOWED_HOSTS`), the Host's
 * name, which the host guard checked, at the port the request came in on (a Host's port is the
 * caller's word: a token for another service on that name must not fit). Where any Host is served,
 * nothing: the caller's Host is all there is, and a token minted for any other server would fit
 * (undefined). Lower-case scheme and host, no trailing slash: RFC 8707's canonical form.
 */
export function publicBase(publicUrl: string | undefined, request: Reached, hostsNamed: boolean): string | undefined {
  if (publicUrl !== undefined) {
    const url = new URL(publicUrl);
    return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`;
  }
  if (!hostsNamed || request.socket.localPort === undefined || !request.headers.host) return undefined;
  // The socket's scheme and the Host header, not fastify's protocol and host: from a proxy named in
  // GATEWAY_TRUST_PROXY those are X-Forwarded-Proto and X-Forwarded-Host, which the host guard never checked.
  const scheme = "encrypted" in request.socket && request.socket.encrypted ? "https" : "http";
  const url = new URL(`${scheme}://${request.headers.host}`);
  url.port = String(request.socket.localPort);
  return `${url.protocol}//${url.host}`;
}

/** The path of the request without its query: the MCP endpoint a resource URL names. */
const pathOf = (request: Pick<FastifyRequest, "url">) => request.url.split("?")[0]!.replace(/\/+$/, "");

/**
 * The gateway as an OAuth 2.1 protected resource (MCP authorization, 2025-11-25 and
 * 2026-07-28): each virtual server endpoint, in each environment, is its own resource, named by
 * its URL. Tokens of identity providers registered as `authorizationServer` must carry that URL
 * as audience, so a token obtained for one virtual server is useless at another.
 */
export class ProtectedResource {
  readonly scopes: string[];

  /** `hostsNamed`: only named hosts are served (see `publicBase`). */
  constructor(
    private readonly projection: CatalogProjection,
    private readonly publicUrl: string | undefined,
    scopes: string,
    private readonly hostsNamed: boolean,
  ) {
    this.scopes = scopes.split(" ").filter(Boolean);
  }

  /** The resource URL of the MCP endpoint a request reached, or undefined when the gateway cannot name itself (`publicBase`). */
  resourceOf(request: Reached): string | undefined {
    const base = publicBase(this.publicUrl, request, this.hostsNamed);
    return base === undefined ? undefined : `${base}${pathOf(request)}`;
  }

  /** Issuers of the registered authorization servers, in a stable order. */
  authorizationServers(): string[] {
    return [...this.projection.identityProviders()]
      .filter((p) => p.authorizationServer === true)
      .map((p) => p.issuer)
      .sort();
  }

  /** Where the metadata of the endpoint a request reached is served, when OAuth is offered at all. */
  metadataUrlOf(request: Reached): string | undefined {
    const base = publicBase(this.publicUrl, request, this.hostsNamed);
    if (base === undefined || this.authorizationServers().length === 0) return undefined;
    return `${base}${METADATA_PREFIX}${pathOf(request)}`;
  }

  /**
   * Serves the metadata for every name under `/mcp/`: it is a function of the URL and the
   * registered authorization servers only, so it says nothing about which virtual servers exist.
   */
  register(app: FastifyInstance): void {
    const handler = async (request: FastifyRequest, reply: import("fastify").FastifyReply) => {
      const servers = this.authorizationServers();
      const base = publicBase(this.publicUrl, request, this.hostsNamed);
      if (servers.length === 0 || base === undefined) return reply.callNotFound();
      return reply.header("cache-control", "max-age=300").send({
        resource: `${base}${pathOf(request).slice(METADATA_PREFIX.length)}`,
        authorization_servers: servers,
        bearer_methods_supported: ["header"],
        ...(this.scopes.length > 0 ? { scopes_supported: this.scopes } : {}),
        resource_name: "Manifold virtual MCP server",
      });
    };
    app.get(`${METADATA_PREFIX}/mcp/:virtualServer`, handler);
    app.get(`${METADATA_PREFIX}/mcp/:environment/:virtualServer`, handler);
  }
}
