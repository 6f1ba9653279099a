import { INVALID_RESULT, ManifoldError, isRecord } from "@manifold/contracts";

/** The string members each `ContentBlock` type must have (2025-11-25 and 2026-07-28 alike); `resource` is checked apart. */
const REQUIRED = new Map<unknown, readonly string[]>([
  ["text", ["text"]],
  ["image", ["data", "mimeType"]],
  ["audio", ["data", "mimeType"]],
  ["resource_link", ["uri", "name"]],
  ["resource", []],
]);

/** Why one content block is no `ContentBlock` (nothing of the upstream's quoted), or undefined. */
function blockFault(block: unknown, index: number): string | undefined {
  if (!isRecord(block)) return `content[${index}] is not an object`;
  const required = REQUIRED.get(block.type);
  if (!required) return `content[${index}] has a type no MCP revision has`;
  for (const member of required) if (typeof block[member] !== "string") return `content[${index}] (${String(block.type)}) has no string ${member}`;
  if (block.type !== "resource") return undefined;
  const resource = block.resource;
  if (!isRecord(resource) || typeof resource.uri !== "string" || (typeof resource.text !== "string" && typeof resource.blob !== "string")) return `content[${index}] (resource) has no resource with a uri and a text or blob`;
  return undefined;
}

/**
 * Why `result` is no `CallToolResult`, or undefined: `content` an array of content blocks, each of
 * a type MCP has with that type's required members, and `isError` a boolean when present. A
 * structural walk, no schema library: it runs on every call (the bench's echo result: see the
 * commit that added it for its cost).
 */
export function callResultFault(result: Record<string, unknown>): string | undefined {
  const content = result.content;
  if (!Array.isArray(content)) return "content is not an array";
  for (let i = 0; i < content.length; i++) {
    const fault = blockFault(content[i], i);
    if (fault) return fault;
  }
  if (result.isError !== undefined && typeof result.isError !== "boolean") return "isError is not a boolean";
  return undefined;
}

/**
 * Judged once, where the connector first reads a tools/call result (the direct caller, the SDK
 * client): one that breaks the schema is `upstream_error` / `invalid_result` on every lane. Before,
 * the fast path passed it on, the gateway's SDK lane patched it (`content: []`) or refused it
 * -32602, and the SDK client over stdio refused it: three answers to one upstream answer.
 */
export function mustBeCallResult(result: Record<string, unknown>, target: string): void {
  const fault = callResultFault(result);
  if (fault) throw new ManifoldError("upstream_error", `${target} answered tools/call with a result that does not follow the MCP schema: ${fault}`, { reason: INVALID_RESULT });
}

/** A task-augmented call's answer that is a task (2025 `CreateTaskResult`, 2026-07-28 `resultType: "task"`), not a tool result. */
export const isTaskAnswer = (result: Record<string, unknown>): boolean => result.resultType === "task" || isRecord(result.task);
