import type { Logger } from "@manifold/telemetry";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { ManifoldError } from "@manifold/contracts";

type Validator = ValidateFunction | null;

/**
 * Checks tool arguments against the pinned `inputSchema` before anything goes upstream.
 * A validator is compiled once per pinned definition (keyed by its hash) and reused by
 * every call; a schema that cannot be compiled is logged once and not enforced, so an odd
 * upstream schema never makes a tool uncallable.
 */
export class ArgumentValidator {
  readonly #ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  readonly #compiled = new Map<string, Validator>();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
    (addFormats as unknown as (ajv: Ajv2020) => void)(this.#ajv);
  }

  /** Throws `invalid_arguments` (JSON-RPC -32602) listing what is wrong with the arguments. */
  check(hash: string, schema: Record<string, unknown>, tool: string, args: unknown): void {
    let validate = this.#compiled.get(hash);
    if (validate === undefined) {
      try {
        validate = this.#ajv.compile(schema);
      } catch (error) {
        this.#logger.warn({ tool, hash, err: error }, "input schema does not compile; arguments are not validated");
        validate = null;
      }
      this.#compiled.set(hash, validate);
    }
    if (!validate || validate(args ?? {})) return;
    throw new ManifoldError("invalid_arguments", `invalid arguments for tool '${tool}': ${describe(validate.errors ?? [])}`, {
      tool,
      errors: (validate.errors ?? []).map((e) => ({ path: e.instancePath || "/", message: e.message ?? "invalid", keyword: e.keyword })),
    });
  }
}

const describe = (errors: ErrorObject[]) =>
  errors
    .slice(0, 5)
    .map((e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`)
    .join("; ");
