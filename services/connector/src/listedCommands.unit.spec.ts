import { stdioPolicy } from "@manifold/contracts";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { writableListedPaths } from "./listedCommands.js";

describe("listed stdio paths the connector's user may change", () => {
  test("a command and the script it is pinned to are reported when writable; missing paths are not", () => {
    const dir = mkdtempSync(join(tmpdir(), "listed-"));
    const script = join(dir, "server.js");
    writeFileSync(script, "");
    const policy = stdioPolicy({ MANIFOLD_STDIO_COMMANDS: [[process.execPath, script], ["/nonexistent/dir/tool"]] });
    expect(writableListedPaths(policy)).toContain(script);
    expect(writableListedPaths(policy)).not.toContain("/nonexistent/dir/tool");
  });

  test("a read-only file in a read-only directory is not, for a user other than root", () => {
    if (process.getuid?.() === 0) {
      // root may write anything: every listed path reads as writable (which the warning then says).
      const policy = stdioPolicy({ MANIFOLD_STDIO_COMMANDS: [["/bin/sh"]] });
      expect(writableListedPaths(policy)).toEqual(["/bin/sh"]);
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), "listed-"));
    const script = join(dir, "server.js");
    writeFileSync(script, "");
    chmodSync(script, 0o444);
    chmodSync(dir, 0o555);
    expect(writableListedPaths(stdioPolicy({ MANIFOLD_STDIO_COMMANDS: [[process.execPath, script]] }))).not.toContain(script);
  });
});
