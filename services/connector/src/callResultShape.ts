import { INVALID_RESULT, ManifoldError, isRecord } from "@manifold/contracts";
import { z } from "zod";

/** The string members each `ContentBlock` type must have (2025-11-25 and 2026-07-28 alike); `resource` is checked apart. */
const REQUIRED = new Map<unknown, readonly string[]>([
  ["text", ["text"]],
  ["image", ["data", "mimeType"]],
  ["audio", ["data", "mimeType"]],
  ["resource_link", ["uri", "name"]],
  ["resource", []],
]);

/**
 * Whether a block of `type` may have the member `key` (2025-11-25 and 2026-07-28 alike, as both
 * SDKs' schemas name them). A switch: a `Set` per type doubled the cost of a call's check.
 */
function named(type: unknown, key: string): boolean {
  switch (key) {
    case "type":
    case "annotations":
    case "_meta":
      return true;
    case "text":
      return type === "text";
    case "data":
      return type === "image" || type === "audio";
    case "mimeType":
      return type === "image" || type === "audio" || type === "resource_link";
    case "resource":
      return type === "resource";
    case "uri":
    case "name":
    case "title":
    case "description":
    case "size":
    case "icons":
      return type === "resource_link";
    default:
      return false;
  }
}

/** The members of the objects a block holds (`_meta` is a free map in every revision). */
const ANNOTATIONS = new Set(["audience", "priority", "lastModified"]);
const ICON = new Set(["src", "mimeType", "sizes", "theme"]);
/** An embedded resource is text contents when it has a string `text` (the SDKs try that form first), else blob. */
const TEXT_CONTENTS = new Set(["uri", "mimeType", "_meta", "text"]);
const BLOB_CONTENTS = new Set(["uri", "mimeType", "_meta", "blob"]);

/** Both SDKs' `Annotations.lastModified` (zod's, so the two accept the same date-times). */
const LAST_MODIFIED = z.iso.datetime({ offset: true });

/**
 * Whether `atob` takes `text`: both SDKs' Base64 check, so the same strings pass (whitespace
 * anywhere, padding optional). Measured faster than a regular expression or a loop over the
 * characters (1 MiB: about 1.0 ms against 1.8–4.9 ms), and it is linear.
 */
function isBase64(text: unknown): boolean {
  if (typeof text !== "string") return false;
  try {
    atob(text);
    return true;
  } catch {
    return false;
  }
}

const isString = (value: unknown) => typeof value === "string";
/** Whether an optional member is absent or `test` holds for it (JSON has no `undefined`: `null` is a value, and refused). */
const absentOr = (value: unknown, test: (value: unknown) => boolean) => value === undefined || test(value);
const isIcon = (icon: unknown) =>
  isRecord(icon) && isString(icon.src) && absentOr(icon.mimeType, isString) && absentOr(icon.sizes, (sizes) => Array.isArray(sizes) && sizes.every(isString)) && absentOr(icon.theme, (theme) => theme === "light" || theme === "dark");

/** Which member of `annotations` holds a value both SDKs' schemas refuse, or undefined. */
function annotationsFault(annotations: unknown): string | undefined {
  if (!isRecord(annotations)) return "annotations is not an object";
  if (!absentOr(annotations.audience, (audience) => Array.isArray(audience) && audience.every((role) => role === "user" || role === "assistant"))) return "annotations.audience is not a list of user and assistant";
  if (!absentOr(annotations.priority, (priority) => typeof priority === "number" && priority >= 0 && priority <= 1)) return "annotations.priority is not a number from 0 to 1";
  if (!absentOr(annotations.lastModified, (date) => LAST_MODIFIED.safeParse(date).success)) return "annotations.lastModified is not an ISO 8601 date-time with an offset";
  return undefined;
}

/** Which optional member of a block of a known type with its required members holds a value both SDKs' schemas refuse, or undefined. */
function valueFault(block: Record<string, unknown>): string | undefined {
  if (block.annotations !== undefined) {
    const fault = annotationsFault(block.annotations);
    if (fault) return fault;
  }
  if (!absentOr(block._meta, isRecord)) return "_meta is not an object";
  switch (block.type) {
    case "image":
    case "audio":
      return isBase64(block.data) ? undefined : "data is not Base64";
    case "resource": {
      const resource = block.resource as Record<string, unknown>;
      if (!absentOr(resource.mimeType, isString)) return "resource.mimeType is not a string";
      if (!absentOr(resource._meta, isRecord)) return "resource._meta is not an object";
      // The SDKs try text contents first: a string `text` makes any `blob` a stranger, left out.
      return isString(resource.text) || isBase64(resource.blob) ? undefined : "resource.blob is not Base64";
    }
    case "resource_link":
      for (const member of ["title", "description", "mimeType"]) if (!absentOr(block[member], isString)) return `${member} is not a string`;
      if (!absentOr(block.size, (size) => typeof size === "number")) return "size is not a number";
      return absentOr(block.icons, (icons) => Array.isArray(icons) && icons.every(isIcon)) ? undefined : "icons is not a list of icons";
    default:
      return undefined;
  }
}

/** Why one content block is no `ContentBlock` (nothing of the upstream's quoted), or undefined. */
function blockFault(block: unknown, index: number): string | undefined {
  if (!isRecord(block)) return `content[${index}] is not an object`;
  const required = REQUIRED.get(block.type);
  if (!required) return `content[${index}] has a type no MCP revision has`;
  for (const member of required) if (typeof block[member] !== "string") return `content[${index}] (${String(block.type)}) has no string ${member}`;
  if (block.type === "resource") {
    const resource = block.resource;
    if (!isRecord(resource) || typeof resource.uri !== "string" || (typeof resource.text !== "string" && typeof resource.blob !== "string")) return `content[${index}] (resource) has no resource with a uri and a text or blob`;
  }
  const fault = valueFault(block);
  return fault && `content[${index}] (${String(block.type)}): ${fault}`;
}

/**
 * Why `result` is no `CallToolResult`, or undefined: `content` an array of content blocks, each of
 * a type MCP has with that type's required members and its other members' values as both SDKs'
 * schemas take them (annotations, Base64, icons, …), and `isError` a boolean when present. A
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

/** Whether `value` is an object with a member outside `known`. */
function hasOthers(value: unknown, known: ReadonlySet<string>): boolean {
  if (!isRecord(value)) return false;
  for (const key in value) if (!known.has(key)) return true;
  return false;
}

/** `value` with only its `known` members, when it is an object. */
function only(value: unknown, known: ReadonlySet<string>): unknown {
  return isRecord(value) ? Object.fromEntries(Object.entries(value).filter(([key]) => known.has(key))) : value;
}

const contentsOf = (resource: Record<string, unknown>) => (typeof resource.text === "string" ? TEXT_CONTENTS : BLOB_CONTENTS);

/** Whether a well-formed block holds a member its schema does not name, at any of its levels. */
function hasUnknownMembers(block: Record<string, unknown>): boolean {
  const type = block.type;
  for (const key in block) if (!named(type, key)) return true;
  if (block.annotations !== undefined && hasOthers(block.annotations, ANNOTATIONS)) return true;
  if (block.type === "resource") return hasOthers(block.resource, contentsOf(block.resource as Record<string, unknown>));
  return Array.isArray(block.icons) && block.icons.some((icon) => hasOthers(icon, ICON));
}

/** A well-formed block without the members its schema does not name. */
function withKnownMembers(block: Record<string, unknown>): Record<string, unknown> {
  const kept = Object.fromEntries(Object.entries(block).filter(([key]) => named(block.type, key)));
  if ("annotations" in kept) kept.annotations = only(kept.annotations, ANNOTATIONS);
  if (block.type === "resource") kept.resource = only(kept.resource, contentsOf(kept.resource as Record<string, unknown>));
  if (Array.isArray(kept.icons)) kept.icons = kept.icons.map((icon) => only(icon, ICON));
  return kept;
}

/**
 * Judged once, where the connector first reads a tools/call result (the direct caller, the SDK
 * client): one that breaks the schema is `upstream_error` / `invalid_result` on every lane. Before,
 * the fast path passed it on, the gateway's SDK lane patched it (`content: []`) or refused it
 * -32602, and the SDK client over stdio refused it: three answers to one upstream answer.
 *
 * Answers the result to pass on: `result` itself, or, when a content block holds members no
 * revision names (`{ type: "text", text, extra }`, an annotation or icon of its own, an embedded
 * resource's `encoding`), a copy without them. The gateway's SDK lane writes a result through its
 * schema, which drops them, and the fast path splices it as it is: the same upstream answer reached
 * agents with and without them by lane (fastPathEquivalence.e2e, `block-extra-keys`). The result's
 * own unknown members stay (its schema keeps them), and so does `_meta` wherever it is.
 */
export function callResultOf(result: Record<string, unknown>, target: string): Record<string, unknown> {
  const fault = callResultFault(result);
  if (fault) throw new ManifoldError("upstream_error", `${target} answered tools/call with a result that does not follow the MCP schema: ${fault}`, { reason: INVALID_RESULT });
  const content = result.content as Record<string, unknown>[];
  for (let i = 0; i < content.length; i++) {
    if (hasUnknownMembers(content[i]!)) return { ...result, content: content.map((block) => (hasUnknownMembers(block) ? withKnownMembers(block) : block)) };
  }
  return result;
}

/** A task-augmented call's answer that is a task (2025 `CreateTaskResult`, 2026-07-28 `resultType: "task"`), not a tool result. */
export const isTaskAnswer = (result: Record<string, unknown>): boolean => result.resultType === "task" || isRecord(result.task);
