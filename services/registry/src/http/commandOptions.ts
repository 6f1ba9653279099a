import { ManifoldError } from "@manifold/contracts";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { CommandOptions, CommandResult } from "../commandHandler.js";

/** `If-Match: "7"` or `7` → 7; `Idempotency-Key` → commandId; the admin token's name → actor. */
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
    if (key.length > 128) throw new ManifoldError("invalid_request", "Idempotency-Key must be at most 128 characters");
    options.commandId = key;
  }
  return options;
}

export const withVersion = (reply: FastifyReply, result: CommandResult) => reply.header("ETag", `"${result.version}"`);

