import { describe, expect, test } from "vitest";
import { exposedNameFor, exposedToolName, toolSuffix } from "./naming.js";

describe("exposed tool names", () => {
  test("are the original name, an underscore and a 6-character suffix", () => {
    expect(exposedToolName("github", "create_issue")).toMatch(/^create_issue_[a-z2-7]{6}$/);
  });

  test("are deterministic: the same (upstream, tool) gives the same name every time", () => {
    const first = exposedToolName("github", "create_issue");
    for (let i = 0; i < 10; i++) expect(exposedToolName("github", "create_issue")).toBe(first);
    expect(toolSuffix("github", "create_issue")).toBe(first.slice(-6));
  });

  test("keep the same tool name from two upstreams apart", () => {
    const a = exposedToolName("github", "search");
    const b = exposedToolName("gitlab", "search");
    expect(a).not.toBe(b);
    expect(a.startsWith("search_")).toBe(true);
    expect(b.startsWith("search_")).toBe(true);
  });

  test("do not collide across many upstreams with the same tool", () => {
    const names = new Set(Array.from({ length: 2_000 }, (_, i) => exposedToolName(`upstream-${i}`, "echo")));
    expect(names.size).toBe(2_000);
  });

  test("separate the upstream and tool parts, so shifted boundaries differ", () => {
    expect(toolSuffix("ab", "c")).not.toBe(toolSuffix("a", "bc"));
  });

  test("fit in 64 characters by shortening the original part, never the suffix", () => {
    const long = "a".repeat(200);
    const name = exposedToolName("upstream", long);
    expect(name).toHaveLength(64);
    expect(name.slice(-7)).toBe(`_${toolSuffix("upstream", long)}`);
    expect(name.slice(0, 57)).toBe("a".repeat(57));
  });

  test("two long names that share their first 57 characters still differ", () => {
    const prefix = "x".repeat(60);
    expect(exposedToolName("u", `${prefix}_one`)).not.toBe(exposedToolName("u", `${prefix}_two`));
  });

  test("use only [A-Za-z0-9_-]: other characters become underscores", () => {
    const name = exposedToolName("fs", "files.read/all é");
    expect(name).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    expect(name.startsWith("files_read_all__")).toBe(true);
  });

  test("keep names at exactly the limit intact", () => {
    const exact = "b".repeat(57);
    expect(exposedToolName("u", exact).slice(0, 57)).toBe(exact);
  });
});

describe("the prefix policy", () => {
  test("prefixes a tool with its upstream's prefix, or its name; an upstream named like an object's member is its name", () => {
    const naming = { policy: "prefix" as const, prefixes: { github: "gh" } };
    expect(exposedNameFor("github", "create issue", naming)).toBe("gh_create_issue");
    expect(exposedNameFor("slack", "post", naming)).toBe("slack_post");
    // Before: `function Object() { [native code] }_echo`, an event no node could read.
    for (const upstream of ["constructor", "toString", "hasOwnProperty", "valueOf"]) expect(exposedNameFor(upstream, "echo", naming)).toBe(`${upstream}_echo`);
  });
});
