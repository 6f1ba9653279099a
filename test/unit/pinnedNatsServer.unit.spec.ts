import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { installNatsDebFile, MAX_PACKAGE_BYTES, packageBytes, PINNED_NATS } from "../../scripts/pinnedNatsServer.mjs";

const hasDpkg = spawnSync("dpkg-deb", ["--version"], { stdio: "ignore" }).status === 0;

/**
 * `npm start` and `npm test` install the nats-server they run from a .deb fetched over plain
 * HTTP (Debian's pool): only its SHA-256, pinned in `scripts/pinnedNatsServer.mjs`, says it is the
 * package meant. Tested without network, on a local package that is a well-formed .deb with a
 * `usr/sbin/nats-server` in it (built here with dpkg-deb), so that the digest alone decides.
 */
describe.skipIf(!hasDpkg)("the pinned nats-server's package", () => {
  let dir: string;
  let deb: string;
  let digest: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "manifold-pinned-nats-test-"));
    const root = join(dir, "pkg");
    await mkdir(join(root, "DEBIAN"), { recursive: true });
    await mkdir(join(root, "usr", "sbin"), { recursive: true });
    await writeFile(join(root, "DEBIAN", "control"), "Package: nats-server\nVersion: 0.0.1\nArchitecture: all\nMaintainer: test <test@example.invalid>\nDescription: not the pinned package\n");
    await writeFile(join(root, "usr", "sbin", "nats-server"), "#!/bin/sh\necho 'nats-server: v0.0.1 (not the pinned one)'\n");
    await chmod(join(root, "usr", "sbin", "nats-server"), 0o755);
    deb = join(dir, "nats-server.deb");
    execFileSync("dpkg-deb", ["--root-owner-group", "-b", root, deb], { stdio: "ignore" });
    digest = createHash("sha256").update(await readFile(deb)).digest("hex");
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("attack: a package whose SHA-256 is not the pinned one is refused, naming both digests, and nothing is installed", async () => {
    expect(digest).not.toBe(PINNED_NATS.sha256);
    const bin = join(dir, "refused", ".manifold", "bin", `nats-server-${PINNED_NATS.version}`);
    await expect(installNatsDebFile(deb, bin)).rejects.toThrow(new Error(`its SHA-256 is ${digest}, not the pinned ${PINNED_NATS.sha256}: refused, nothing installed`));
    expect(existsSync(bin)).toBe(false);
    // Not even the folder it would have gone in.
    expect(existsSync(dirname(bin))).toBe(false);
  });

  test("the same package, when its SHA-256 is the one expected, is installed and runs (the refusal above is the digest's alone)", async () => {
    const bin = join(dir, "accepted", ".manifold", "bin", "nats-server");
    await expect(installNatsDebFile(deb, bin, digest)).resolves.toBe(bin);
    expect(execFileSync(bin, [], { encoding: "utf8" })).toContain("not the pinned one");
  });

  test("attack: a symlink where the binary goes is replaced, not followed: the file it names is neither written nor made executable", async () => {
    // A link planted in the checkout's .manifold/bin (by anything that can write there, or an
    // unpacked archive) made the copy and the chmod write through it: here a private key became
    // the nats-server binary, mode 0755. Also: a binary another run is starting is never half-written.
    const bin = join(dir, "linked", ".manifold", "bin", "nats-server");
    const victim = join(dir, "linked", "id_ed25519");
    await mkdir(dirname(bin), { recursive: true });
    await writeFile(victim, "PRIVATE KEY\n", { mode: 0o600 });
    await symlink(victim, bin);
    await expect(installNatsDebFile(deb, bin, digest)).resolves.toBe(bin);
    expect(await readFile(victim, "utf8")).toBe("PRIVATE KEY\n");
    expect((await stat(victim)).mode & 0o777).toBe(0o600);
    expect((await lstat(bin)).isSymbolicLink()).toBe(false);
    expect(execFileSync(bin, [], { encoding: "utf8" })).toContain("not the pinned one");
  });
});

describe("the pinned nats-server's download", () => {
  test("attack: a body without end (plain HTTP: anyone on the path) is refused past MAX_PACKAGE_BYTES as it arrives, not held whole", async () => {
    // Before, `response.arrayBuffer()` held all of it, for up to 120 s, before the digest was checked.
    let sent = 0;
    const chunk = new Uint8Array(1024 * 1024);
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    await expect(packageBytes(new Response(endless))).rejects.toThrow(new Error(`the package is larger than ${MAX_PACKAGE_BYTES} bytes: refused, nothing installed`));
    expect(sent).toBeLessThanOrEqual(MAX_PACKAGE_BYTES + 4 * chunk.length);
  });

  test("a package that says it is too large is refused before its body is read; one within the bound is read whole", async () => {
    const declared = new Response("x", { headers: { "content-length": String(MAX_PACKAGE_BYTES + 1) } });
    await expect(packageBytes(declared)).rejects.toThrow(/larger than/);
    expect(declared.bodyUsed).toBe(false);
    expect(Buffer.from(await packageBytes(new Response("a .deb"))).toString()).toBe("a .deb");
  });
});
