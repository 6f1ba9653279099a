import { describe, expect, test } from "vitest";
import { parseManifoldFile } from "../../tools/manifold/dist/gitops/file.js";

describe("manifold.yaml parsing", () => {
  test("a key named __proto__ is refused at its line, not dropped", () => {
    const text = "environments:\n  - name: prod\n    bindings:\n      docs: docs-eu\n      __proto__: docs-us\n";
    expect(() => parseManifoldFile(text, "m.yaml")).toThrow("m.yaml:5: a key named __proto__ is not allowed");
    expect(parseManifoldFile(text.replace("      __proto__: docs-us\n", ""), "m.yaml").environments[0]?.bindings).toEqual({ docs: "docs-eu" });
  });
});
