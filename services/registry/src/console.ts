import type { FastifyInstance } from "fastify";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";

/**
 * The operator console is a plain client of the admin API, so the registry only hands out its
 * built files: no session, no cookie, nothing the API does not already check on every request.
 * The strict policy below is why the bundle has no inline script or style: a description an
 * upstream wrote cannot run as script or restyle the page, even if a bug rendered it as HTML.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json; charset=utf-8",
};

/** Every file of the built console, read once: a few hundred kilobytes, and no path from a request ever reaches the file system. */
function loadFiles(dir: string): Map<string, { body: Buffer; type: string }> {
  const files = new Map<string, { body: Buffer; type: string }>();
  const walk = (at: string) => {
    for (const entry of readdirSync(at)) {
      const path = join(at, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (TYPES[extname(entry)]) files.set(relative(dir, path).split(sep).join("/"), { body: readFileSync(path), type: TYPES[extname(entry)]! });
    }
  };
  walk(dir);
  return files;
}

export interface ConsoleOptions {
  /** The console's built files (`console/dist`). */
  dir: string;
  /** A trace viewer URL with `{traceId}` in it; the audit view links each record's trace there. */
  traceUrl?: string | undefined;
}

/** Serves the console under `/console/` with its security headers; says so once and serves a 404 when it was not built. */
export function serveConsole(app: FastifyInstance, { dir, traceUrl }: ConsoleOptions): void {
  let files: Map<string, { body: Buffer; type: string }>;
  try {
    files = loadFiles(dir);
  } catch {
    files = new Map();
  }
  if (!files.has("index.html")) app.log.warn({ dir }, "the operator console is not built: /console answers 404 (run pnpm run build)");
  const config = Buffer.from(JSON.stringify({ traceUrl: traceUrl ?? null }));

  app.get("/console", async (_req, reply) => reply.redirect("/console/", 308));
  app.get("/console/*", async (req, reply) => {
    const path = (req.params as { "*": string })["*"];
    const file = path === "config.json" ? { body: config, type: TYPES[".json"]! } : files.get(path || "index.html");
    reply
      .header("Content-Security-Policy", CONSOLE_CSP)
      .header("X-Content-Type-Options", "nosniff")
      .header("Referrer-Policy", "no-referrer")
      .header("Cross-Origin-Opener-Policy", "same-origin")
      .header("Cross-Origin-Resource-Policy", "same-origin");
    if (!file) return reply.status(404).send({ error: { code: "not_found", message: `no console file '${path}'` } });
    // Vite names assets by their content hash: they never change; the page and config may.
    const immutable = path.startsWith("assets/");
    return reply
      .header("Cache-Control", immutable ? "public, max-age=31536000, immutable" : "no-store")
      .type(file.type)
      .send(file.body);
  });
}
