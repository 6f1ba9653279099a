// The nats-server the deploy files pin, fetched as Debian's package and installed only if it is
// the very package pinned (its SHA-256). Imported by bootstrap.mjs; tested with local files by
// test/unit/pinnedNatsServer.unit.spec.ts (no network).
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/**
 * The nats-server the deploy files pin (2.10), so that the suite and `npm start` run what is
 * deployed: Debian's own build, from trixie's pool (bookworm's apt has 2.9, which pings a busy
 * client differently and rescans reply records; docs/operations.md), checked against the SHA-256
 * in trixie's package index and unpacked into `.manifold/bin`. `NATS_SERVER_BIN` overrides it.
 */
export const PINNED_NATS = Object.freeze({
  version: "2.10.27",
  url: "http://deb.debian.org/debian/pool/main/n/nats-server/nats-server_2.10.27-1+b2_amd64.deb",
  sha256: "6d913ac987b78734c08537c2adeb1526cf735f216173a9170d94b185fcfe6f8a",
});

/**
 * The most a fetched package may hold (Debian's is a few MB): it comes over plain HTTP, so anyone on
 * the path could send a body without end, and all of it was held in memory, for up to the fetch's
 * 120 s, before its digest was checked.
 */
export const MAX_PACKAGE_BYTES = 64 * 1024 * 1024;

/** A fetched package's bytes, refused (the download ended) past `MAX_PACKAGE_BYTES`, by its declared length or as it arrives. */
export async function packageBytes(response) {
  const tooLarge = () => new Error(`the package is larger than ${MAX_PACKAGE_BYTES} bytes: refused, nothing installed`);
  if (Number(response.headers.get("content-length")) > MAX_PACKAGE_BYTES) throw tooLarge();
  const chunks = [];
  let size = 0;
  // Leaving the loop by a throw cancels the body.
  for await (const chunk of response.body ?? []) {
    size += chunk.length;
    if (size > MAX_PACKAGE_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

const quiet = (command, args) => spawnSync(command, args, { stdio: "ignore" }).status === 0;

/** Where bootstrap installs the pinned nats-server under the checkout `root`. */
export const pinnedBinOf = (root) => join(root, ".manifold", "bin", `nats-server-${PINNED_NATS.version}`);

/**
 * Installs the `nats-server` of a downloaded .deb (its bytes) at `bin`, if and only if their SHA-256
 * is `sha256`: on a mismatch it throws, naming both digests, before anything is written. Then it
 * unpacks the package (dpkg-deb) in a temporary folder, copies its `usr/sbin/nats-server` beside
 * `bin` under a new name (mode 0755) and renames it to `bin`, and returns `bin`. The rename replaces
 * whatever `bin` was: a symlink planted there was followed by the copy and the chmod (the file it
 * named, a private key, became the binary, mode 0755), and a binary another run was starting was
 * written over while it ran.
 */
export async function installNatsDeb(deb, bin, sha256 = PINNED_NATS.sha256) {
  const actual = createHash("sha256").update(deb).digest("hex");
  if (actual !== sha256) throw new Error(`its SHA-256 is ${actual}, not the pinned ${sha256}: refused, nothing installed`);
  const work = await mkdtemp(join(tmpdir(), "manifold-nats-"));
  try {
    await writeFile(join(work, "nats.deb"), deb);
    if (!quiet("dpkg-deb", ["-x", join(work, "nats.deb"), join(work, "x")])) throw new Error("dpkg-deb could not unpack it");
    await mkdir(dirname(bin), { recursive: true });
    const fresh = `${bin}.${randomBytes(6).toString("hex")}`;
    try {
      // EXCL: never through a link, never over another file.
      await copyFile(join(work, "x", "usr", "sbin", "nats-server"), fresh, constants.COPYFILE_EXCL);
      await chmod(fresh, 0o755);
      await rename(fresh, bin);
    } catch (error) {
      await rm(fresh, { force: true });
      throw error;
    }
    return bin;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The same from a .deb on disk. */
export const installNatsDebFile = async (path, bin, sha256 = PINNED_NATS.sha256) => installNatsDeb(await readFile(path), bin, sha256);

/** The pinned nats-server's path under `root`, fetched once; undefined (with the reason) where it cannot be had. */
export async function pinnedNatsServer(root) {
  const bin = pinnedBinOf(root);
  if (quiet(bin, ["--version"])) return bin;
  if (process.platform !== "linux" || process.arch !== "x64" || !quiet("dpkg-deb", ["--version"])) return undefined;
  console.log(`manifold: fetching nats-server ${PINNED_NATS.version} (Debian's package)`);
  try {
    const response = await fetch(PINNED_NATS.url, { signal: AbortSignal.timeout(120_000) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    await installNatsDeb(await packageBytes(response), bin);
    return quiet(bin, ["--version"]) ? bin : undefined;
  } catch (error) {
    console.warn(`manifold: could not fetch nats-server ${PINNED_NATS.version} (${error.message})`);
    return undefined;
  }
}
