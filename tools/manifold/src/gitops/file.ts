import {
  AuditSettings,
  CreateConsumerBody,
  ExposedToolName,
  PromoteBody,
  CreateVirtualServerBody,
  Grant,
  IdentityProvider,
  RegisterUpstreamBody,
  ResourceName,
} from "@manifold/contracts";
import { isScalar, LineCounter, parseDocument, visit, type Node } from "yaml";
import { z } from "zod";

/** `manifold.yaml`: the whole catalog as data, in the admin API's own shapes. */
export const ManifoldFile = z.strictObject({
  upstreams: z.array(RegisterUpstreamBody).default([]),
  environments: z.array(z.strictObject({ name: ResourceName, bindings: z.record(ResourceName, ResourceName).default({}) })).default([]),
  consumers: z.array(CreateConsumerBody).default([]),
  identityProviders: z.array(IdentityProvider).default([]),
  virtualServers: z
    .array(
      CreateVirtualServerBody.extend({
        grants: z.array(Grant).default([]),
        /** Whether audit records keep values; absent: they never do. */
        audit: AuditSettings.optional(),
        /** Old exposed names that still work after a rename: old → current. */
        deprecatedAliases: z.record(ExposedToolName, ExposedToolName).default({}),
        /** The environments it is served in, each from the environment its pins were promoted from, in order. */
        promotions: z.array(PromoteBody).default([]),
      }),
    )
    .default([]),
});
export type ManifoldFile = z.infer<typeof ManifoldFile>;

/**
 * Reads and validates a manifold file; every problem is reported with its line and the path
 * of the field (e.g. `manifold.yaml:12: virtualServers[0].tools[1].upstream: …`).
 */
export function parseManifoldFile(text: string, fileName: string): ManifoldFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  if (doc.errors.length > 0) {
    const error = doc.errors[0]!;
    throw new Error(`${fileName}:${error.linePos?.[0]?.line ?? "?"}: ${error.message.split("\n")[0]}`);
  }
  // A key named __proto__ becomes no key at all once read into an object, so the entry would be
  // dropped without a word; the file is refused instead, at the key's line.
  visit(doc, {
    Pair(_, pair) {
      if (isScalar(pair.key) && pair.key.value === "__proto__") {
        throw new Error(`${fileName}:${pair.key.range ? lines.linePos(pair.key.range[0]).line : "?"}: a key named __proto__ is not allowed`);
      }
    },
  });
  const result = ManifoldFile.safeParse(doc.toJS() ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    let path = [...issue.path];
    let node = doc.getIn(path, true) as Node | undefined;
    // A missing field has no node: point at the nearest enclosing one.
    while (!node?.range && path.length > 0) node = doc.getIn((path = path.slice(0, -1)), true) as Node | undefined;
    const line = node?.range ? lines.linePos(node.range[0]).line : 1;
    const field = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").replace(/^\./, "") || "(file)";
    return `${fileName}:${line}: ${field}: ${issue.message}`;
  });
  throw new Error(problems.join("\n"));
}
