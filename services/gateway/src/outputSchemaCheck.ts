import { INVALID_RESULT, ManifoldError, isRecord, type Era } from "@manifold/contracts";
import { cut, pathOf, type ArgumentValidator } from "./argumentValidator.js";
import type { ToolRoute } from "./catalog.js";

/**
 * Holds a tool result to the pinned `outputSchema` (2025-11-25 and 2026-07-28 alike: "Servers MUST
 * provide structured results that conform to this schema"): unless `isError` is true, the result
 * must have `structuredContent` and the schema must take it, as both SDKs' `Client.callTool` check
 * it. Otherwise `upstream_error` / `invalid_result`, naming the failing path and never the value.
 * Before, the result reached the agent as the upstream wrote it, and a 1.x or 2.x client threw
 * (-32602 "Structured content does not match the tool's output schema", -32600 "did not return
 * structured content") on a pin the agent had been shown.
 *
 * A tool without an output schema costs one property read: the text is parsed only for a tool
 * that has one. The text arrives bounded (the bus's `max_payload`, `JsonLimits.resultDepth`
 * checked by the connector) before any validator walks it; a validator that throws (a schema
 * whose `$ref` loops without consuming the value) refuses the result too.
 */
export function mustFollowOutputSchema(validator: ArgumentValidator, route: ToolRoute, text: string, era: Era): void {
  const schema = route.outputSchema;
  if (schema === undefined) {
    // 2025 revisions type structuredContent an object (the 1.x client refuses anything else);
    // 2026-07-28 takes any JSON value (SEP-2106), so its agents get it as written. Parsed only
    // when the text names it at all: the connector hands on only text whose keys are unescaped
    // (`resultTextOf`; a `\u0073…` is written again by JSON.stringify), so no spelling hides it.
    if (era === "legacy" && text.includes('"structuredContent"')) mustBeObjectStructured(route, JSON.parse(text) as Record<string, unknown>);
    return;
  }
  const validate = validator.compiled(route.hash, schema, route.tool, "output");
  if (!validate) return;
  const result = JSON.parse(text) as Record<string, unknown>;
  if (result.isError === true) return;
  let fault: string | undefined;
  if (!("structuredContent" in result)) fault = "it has no structuredContent";
  else {
    try {
      if (!validate(result.structuredContent)) {
        const [error] = validate.errors ?? [];
        fault = error ? `structuredContent${pathOf(error) === "/" ? "" : pathOf(error)} ${cut(error.message ?? "is invalid")}` : "structuredContent is invalid";
      }
    } catch {
      fault = "structuredContent could not be checked against it";
    }
  }
  if (fault) throw new ManifoldError("upstream_error", `upstream '${route.upstream}' answered '${cut(route.tool)}' with a result its pinned outputSchema refuses: ${fault}`, { reason: INVALID_RESULT });
}


/** A 2025 agent's result: structuredContent, when there is one, must be an object. */
function mustBeObjectStructured(route: ToolRoute, result: Record<string, unknown>): void {
  if (result.structuredContent === undefined || isRecord(result.structuredContent)) return;
  throw new ManifoldError("upstream_error", `upstream '${route.upstream}' answered '${cut(route.tool)}' with structuredContent that is not an object, which this protocol revision requires`, { reason: INVALID_RESULT });
}
