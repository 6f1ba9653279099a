import type { StdioPolicy } from "./stdioPolicy.js";

/** How a package runner names an exact version, and what an example pin looks like. */
interface Runner {
  /** The words that make the launcher a package runner (`npm exec`, `pipx run`). */
  readonly words: readonly string[];
  readonly exact: (target: string) => boolean;
  readonly example: (target: string) => string;
}
// npm's form: `name@1.2.3`, `@scope/name@1.2.3` (a range or a tag such as `latest` is no pin).
const NPM: Omit<Runner, "words"> = {
  exact: (target) => /.@\d+\.\d+\.\d+\S*$/.test(target),
  example: (target) => `${target.lastIndexOf("@") > 0 ? target.slice(0, target.lastIndexOf("@")) : target}@1.2.3`,
};
// Python's: `name==1.2.3` (uvx also takes `name@1.2.3`).
const PYTHON: Omit<Runner, "words"> = { exact: (target) => /(==|@)\d+(\.\d+)*\S*$/.test(target), example: (target) => `${target.split(/[=<>~@!]/)[0]}==1.2.3` };
const RUNNERS: Readonly<Record<string, readonly Runner[]>> = {
  npx: [{ words: [], ...NPM }],
  pnpx: [{ words: [], ...NPM }],
  bunx: [{ words: [], ...NPM }],
  npm: [{ words: ["exec"], ...NPM }],
  pnpm: [{ words: ["dlx"], ...NPM }],
  yarn: [{ words: ["dlx"], ...NPM }],
  bun: [{ words: ["x"], ...NPM }],
  uvx: [{ words: [], ...PYTHON }],
  pipx: [{ words: ["run"], ...PYTHON }],
  uv: [{ words: ["tool", "run"], ...PYTHON }],
};
/** Interpreters (any version suffix): their target is a script by path, a module (`-m`) or a jar (`-jar`). */
const INTERPRETER = /^(node|nodejs|python|pypy|ruby|perl|php|bun|deno|java|sh|bash|zsh|dash|ksh|fish)[\d.]*$/;
/** Wrappers run another program: the entry is judged by what follows them. */
const WRAPPERS = new Set(["env", "sudo", "doas", "nice", "nohup", "timeout", "xargs", "stdbuf", "setsid", "chroot"]);
/** Wrappers' options that take the next word as their value. */
const OPTIONS_WITH_VALUES = new Set(["-u", "-g", "-n", "-s", "-k", "-C", "--user", "--group", "--signal", "--kill-after"]);
/** Container runtimes: their target is an image, pinned by tag or digest. */
const CONTAINERS = new Set(["docker", "podman", "nerdctl"]);

const basename = (path: string) => path.slice(path.lastIndexOf("/") + 1);
const isOption = (word: string) => word.startsWith("-");
/** A word that names a file to run: a path, or a name with a script's extension. */
const isScript = (word: string) => word.includes("/") || /\.(c|m)?[jt]s$|\.py$|\.rb$|\.pl$|\.php$|\.sh$|\.jar$/.test(word);

type Verdict = { kind: "launcher" } | { kind: "unversioned"; target: string; example: string } | undefined;

/** What an entry launches, judged from its pinned words: open (a launcher alone), an unversioned package, or fine. */
function judge(program: string, args: readonly string[]): Verdict {
  const name = basename(program);
  if (WRAPPERS.has(name)) {
    // The wrapped program: the first word that is no option, no option's value and no setting
    // (`timeout 60 node …`, `nice -n 10 node …`, `sudo -u mcp node …`, `env A=b node …`).
    for (let i = 0; i < args.length; i++) {
      const word = args[i]!;
      if (isOption(word) || /^\d/.test(word) || word.includes("=") || OPTIONS_WITH_VALUES.has(args[i - 1] ?? "")) continue;
      return judge(word, args.slice(i + 1));
    }
    return { kind: "launcher" };
  }
  if (CONTAINERS.has(name)) {
    if (args[0] !== "run") return { kind: "launcher" };
    // An image pinned by tag or digest (`repo/image:1.2.3`, `image@sha256:…`); `latest` is no pin.
    return args.slice(1).some((word) => !isOption(word) && /(@sha256:|:(?!latest$)[\w][\w.-]*$)/.test(word)) ? undefined : { kind: "launcher" };
  }
  for (const runner of RUNNERS[name] ?? []) {
    if (!runner.words.every((word, i) => args[i] === word)) continue;
    const rest = args.slice(runner.words.length);
    const packageOption = rest.find((word) => word.startsWith("--package=") || word.startsWith("--from="));
    const target = packageOption ? packageOption.slice(packageOption.indexOf("=") + 1) : rest.find((word) => !isOption(word));
    if (target === undefined) return { kind: "launcher" };
    // A local path is no registry's to serve.
    if (target.startsWith("/") || target.startsWith(".")) return undefined;
    return runner.exact(target) ? undefined : { kind: "unversioned", target, example: runner.example(target) };
  }
  if (INTERPRETER.test(name) || name === "uv") {
    const named = args.some((word, i) => isScript(word) || ((args[i - 1] === "-m" || args[i - 1] === "-jar") && !isOption(word)));
    return named ? undefined : { kind: "launcher" };
  }
  // A package tool pinned to none of its runner forms (`npm install`, `pnpm`): it may be told anything.
  return RUNNERS[name] ? { kind: "launcher" } : undefined;
}

/**
 * What an operator should hear about `MANIFOLD_STDIO_COMMANDS` at start: entries that pin only a
 * launcher (a package runner, interpreter, wrapper or container runtime without what it runs),
 * and package runners pinned to a package without an exact version (whatever the package
 * registry serves under that name next runs). Heuristics and advice, not refusals: the list is the
 * operator's. An entry is named by its command (and its package), never its other words, which
 * may hold a secret.
 */
export function stdioWarnings(policy: StdioPolicy): string[] {
  const warnings: string[] = [];
  for (const entry of policy.commands) {
    const verdict = judge(entry.command, entry.leadingArgs);
    if (verdict?.kind === "launcher") {
      warnings.push(`MANIFOLD_STDIO_COMMANDS entry for ${entry.command} pins only a launcher: a registration may have it run any package, script, image or program; list what it runs too (e.g. '/usr/bin/npx -y @scope/server@1.2.3', '/usr/bin/node /opt/mcp/server.js')`);
    } else if (verdict?.kind === "unversioned") {
      warnings.push(`MANIFOLD_STDIO_COMMANDS entry for ${entry.command} runs the package '${verdict.target}' without an exact version: whatever its registry serves under that name next runs here; pin one (e.g. '${verdict.example}')`);
    }
  }
  return warnings;
}
