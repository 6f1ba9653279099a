import { describe, expect, test } from "vitest";
import { stdioPolicy } from "./stdioPolicy.js";
import { stdioWarnings } from "./stdioWarnings.js";

const warningsFor = (...entries: string[][]) => stdioWarnings(stdioPolicy({ MANIFOLD_STDIO_COMMANDS: entries }));

describe("what an operator hears about MANIFOLD_STDIO_COMMANDS", () => {
  test("an entry pinned only to a launcher, interpreter or wrapper", () => {
    for (const entry of [["/usr/bin/npx", "-y"], ["/usr/bin/node"], ["/usr/bin/python3", "-u"], ["/usr/bin/env"], ["/usr/bin/npm", "install"], ["/usr/bin/pnpm"], ["/usr/local/bin/uv"], ["/usr/bin/docker"]]) {
      const warnings = warningsFor(entry);
      expect(warnings, entry.join(" ")).toHaveLength(1);
      expect(warnings[0]).toContain("pins only a launcher");
    }
  });

  test("a package runner pinned to a package without a version", () => {
    expect(warningsFor(["/usr/bin/npx", "-y", "@modelcontextprotocol/server-everything"])[0]).toContain("'@modelcontextprotocol/server-everything' without a version");
    expect(warningsFor(["/usr/bin/pnpm", "dlx", "some-server"])[0]).toContain("without a version");
    expect(warningsFor(["/usr/local/bin/uvx", "mcp-server-fetch"])[0]).toContain("without a version");
  });

  test("nothing for pinned and versioned entries, or for programs that are not launchers", () => {
    expect(
      warningsFor(
        ["/usr/bin/npx", "-y", "@modelcontextprotocol/server-everything@2025.9.25"],
        ["/usr/bin/npx", "server-a@1.0.0"],
        ["/usr/local/bin/uvx", "mcp-server-fetch==2025.4.7"],
        ["/usr/bin/npm", "exec", "pkg@1"],
        ["/usr/bin/node", "/opt/mcp/server.js"],
        ["/usr/bin/python3", "-m", "mcp_server"],
        ["/usr/local/bin/github-mcp-server"],
      ),
    ).toEqual([]);
  });
});
