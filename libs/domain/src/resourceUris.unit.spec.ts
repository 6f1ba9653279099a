import { MAX_URI_LENGTH } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { exposeUri, parseExposedUri, templateMatcher } from "./resourceUris.js";

describe("exposed resource URIs (<upstream>+<uri>)", () => {
  test.each([
    ["files", "file:///README.md"],
    ["a", "demo://resource/dynamic/text/1"],
    ["git-host", "git+ssh://example.com/repo.git"],
    ["ui-kit", "ui://widget/panel.html"],
    ["x9", "urn:isbn:0451450523"],
    ["files", "https://example.com/a+b?c=d+e#f"],
  ])("round trip: %s + %s", (upstream, uri) => {
    const exposed = exposeUri(upstream, uri)!;
    expect(exposed).toBe(`${upstream}+${uri}`);
    expect(parseExposedUri(exposed)).toEqual({ upstream, uri });
  });

  test("two upstreams' same URI stay apart", () => {
    expect(exposeUri("a", "file:///README.md")).not.toBe(exposeUri("b", "file:///README.md"));
  });

  test("an original without a scheme, or too long, is not mapped", () => {
    for (const uri of ["", "README.md", "/etc/passwd", "://x", "1abc:x", "{scheme}://x", `x://${"a".repeat(MAX_URI_LENGTH)}`]) expect(exposeUri("files", uri), uri).toBeUndefined();
    expect(exposeUri("Not+A+Name", "file:///x")).toBeUndefined();
    expect(exposeUri("UPPER", "file:///x")).toBeUndefined();
  });

  test("hostile exposed URIs are refused, never guessed", () => {
    const hostile = [
      "",
      "file:///README.md",
      "+file:///x",
      "files+",
      "files+README.md",
      "FILES+file:///x",
      "fi_les+file:///x",
      "-files+file:///x",
      "files+/etc/passwd",
      `files+file:///${"a".repeat(MAX_URI_LENGTH)}`,
      `${"a".repeat(64)}+file:///x`,
      "files\n+file:///x",
      "../files+file:///x",
    ];
    for (const uri of hostile) expect(parseExposedUri(uri), JSON.stringify(uri)).toBeUndefined();
    expect(parseExposedUri(42 as unknown as string)).toBeUndefined();
  });

  test("the first + splits: the original keeps its own", () => {
    expect(parseExposedUri("a+b+c://x")).toEqual({ upstream: "a", uri: "b+c://x" });
  });
});

describe("URI template matching (RFC 6570)", () => {
  test("simple expressions match one segment, reserved ones any run", () => {
    const id = templateMatcher("demo://resource/dynamic/text/{resourceId}")!;
    expect(id("demo://resource/dynamic/text/7")).toBe(true);
    expect(id("demo://resource/dynamic/text/")).toBe(true);
    expect(id("demo://resource/dynamic/text/7/../../secret")).toBe(false);
    expect(id("demo://resource/dynamic/blob/7")).toBe(false);
    expect(id("xdemo://resource/dynamic/text/7")).toBe(false);
    const path = templateMatcher("file:///{+path}")!;
    expect(path("file:///a/b/c.txt")).toBe(true);
    expect(templateMatcher("db://{table}{?limit}")!("db://users?limit=3")).toBe(false);
  });

  test("literal text is matched literally (regex characters included)", () => {
    const m = templateMatcher("a.b://x(1)*/{id}")!;
    expect(m("a.b://x(1)*/z")).toBe(true);
    expect(m("aXb://x(1)*/z")).toBe(false);
  });

  test("unbalanced braces match nothing", () => {
    expect(templateMatcher("demo://{id")).toBeUndefined();
    expect(templateMatcher("demo://id}")).toBeUndefined();
  });

  test("expressions match what they may hold, wherever the literal text around them recurs", () => {
    const date = templateMatcher("cal://{y}-{m}-{d}")!;
    expect(date("cal://2026-12-02")).toBe(true);
    expect(date("cal://a-b-c-d")).toBe(true);
    expect(date("cal://2026-12")).toBe(false);
    expect(date("cal://2026-12-02/x")).toBe(false);
    expect(templateMatcher("x://{a}{b}")!("x://")).toBe(true);
    expect(templateMatcher("x://{+a}/end")!("x://p/q/end")).toBe(true);
    expect(templateMatcher("x://{a}/end")!("x://p/q/end")).toBe(false);
    expect(templateMatcher("x://{#f}")!("x://a#b?c")).toBe(true);
    expect(templateMatcher("x://id")!("x://id")).toBe(true);
    expect(templateMatcher("x://id")!("x://idx")).toBe(false);
  });

  test("attack: an agent's URI cannot make matching backtrack (three expressions, 4 KiB of separators)", { timeout: 2_000 }, () => {
    // As lazy regex groups: ~n³/6 steps, the gateway's event loop held for minutes by one resources/read.
    const date = templateMatcher("cal://{y}-{m}-{d}")!;
    const hostile = `cal://${"-".repeat(MAX_URI_LENGTH - 8)}/`;
    for (let i = 0; i < 100; i++) expect(date(hostile)).toBe(false);
    expect(templateMatcher("db://{table}{?limit}")!(`db://${"a".repeat(MAX_URI_LENGTH - 6)}/`)).toBe(false);
  });

  test("an over-long URI never matches", () => {
    expect(templateMatcher("x://{+rest}")!(`x://${"a".repeat(MAX_URI_LENGTH)}`)).toBe(false);
  });
});
