import { ManifoldError } from "@manifold/contracts";
import { requestFingerprint } from "@manifold/domain";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { CommandOptions, CommandResult } from "../commandHandler.js";

const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,128}$/;

/** `If-Match: "7"` or `7` → 7; `Idempotency-Key` → the key with the request's fingerprint; the admin token's name → actor. */
export function commandOptions(request: FastifyRequest): CommandOptions {
  const options: CommandOptions = { actor: `admin:${request.adminName}` };
  const ifMatch = request.headers["if-match"];
  if (typeof ifMatch === "string") {
    const version = Number(ifMatch.replace(/^W\//, "").replaceAll('"', ""));
    if (!Number.isInteger(version) || version < 0) throw new ManifoldError("invalid_request", `If-Match must be a version number, got '${ifMatch}'`);
    options.expectedVersion = version;
  }
  const key = request.headers["idempotency-key"];
  if (typeof key === "string" && key.length > 0) {
    if (!IDEMPOTENCY_KEY.test(key)) throw new ManifoldError("invalid_request", "Idempotency-Key must be 1-128 printable ASCII characters", { header: "Idempotency-Key" });
    // The request as the route understood it (validated, defaults applied); a body the route ignores is no part of it.
    const body = request.routeOptions.schema?.body ? request.body : null;
    const { method, params, query } = request;
    const fingerprint = requestFingerprint({ method, route: request.routeOptions.url ?? request.url, params, query, body, actor: options.actor! });
    options.idempotency = { key, fingerprint };
  }
  return options;
}

export const withVersion = (reply: FastifyReply, result: CommandResult) => reply.header("ETag", `"${result.version}"`);

