import type { StdioCommand, StdioPolicy } from "./stdioPolicy.js";

/**
 * Launchers whose listed entry should name what they launch: package runners (with the words
 * that make them one), whose target should carry a version, and interpreters and wrappers, whose
 * target is a script, module or program. An entry pinned to the launcher alone lets a
 * registration run anything through it (`npx -y <any package>`, `node -e <any code>`).
 */
const PACKAGE_RUNNERS: Readonly<Record<string, { readonly words: readonly string[]; readonly versioned: (target: string) => boolean }>> = (() => {
  // npm's form: `name@range`, `@scope/name@range` (a leading `@` is the scope's).
  const npm = (target: string) => target.lastIndexOf("@") > 0;
  // Python's: `name==1.2`, `name@1.2` (uvx), or a pinned requirement such as `name>=1,<2`.
  const python = (target: string) => /[=@<>~]/.test(target);
  return {
    npx: { words: [], versioned: npm },
    pnpx: { words: [], versioned: npm },
    bunx: { words: [], versioned: npm },
    npm: { words: ["exec"], versioned: npm },
    pnpm: { words: ["dlx"], versioned: npm },
    yarn: { words: ["dlx"], versioned: npm },
    bun: { words: ["x"], versioned: npm },
    uvx: { words: [], versioned: python },
    pipx: { words: ["run"], versioned: python },
  };
})();
const LAUNCHERS = new Set(["node", "python", "python3", "ruby", "perl", "php", "deno", "uv", "sh", "bash", "zsh", "dash", "env", "sudo", "doas", "nice", "nohup", "timeout", "xargs", "docker", "podman", "nerdctl"]);

const basename = (path: string) => path.slice(path.lastIndexOf("/") + 1);
const display = (entry: StdioCommand) => [entry.command, ...entry.leadingArgs].join(" ");

/**
 * What an operator should hear about `MANIFOLD_STDIO_COMMANDS` at start: entries that pin only a
 * launcher, and package runners pinned to a package without a version (whatever the package
 * registry serves under that name runs). Advice, not refusals: the list is the operator's.
 */
export function stdioWarnings(policy: StdioPolicy): string[] {
  const warnings: string[] = [];
  for (const entry of policy.commands) {
    const name = basename(entry.command);
    const runner = PACKAGE_RUNNERS[name];
    if (!runner && !LAUNCHERS.has(name)) continue;
    const words = runner?.words ?? [];
    const pinsWords = words.every((word, i) => entry.leadingArgs[i] === word);
    const target = pinsWords ? entry.leadingArgs.slice(words.length).find((arg) => !arg.startsWith("-")) : undefined;
    if (target === undefined) {
      warnings.push(`MANIFOLD_STDIO_COMMANDS entry '${display(entry)}' pins only a launcher: a registration may have it run any package, script or program; list what it launches too (e.g. '/usr/bin/npx -y @scope/server@1.2.3', '/usr/bin/node /opt/mcp/server.js')`);
    } else if (runner && !runner.versioned(target)) {
      warnings.push(`MANIFOLD_STDIO_COMMANDS entry '${display(entry)}' runs the package '${target}' without a version: whatever its registry serves under that name next runs here; pin one (e.g. '${target}@1.2.3')`);
    }
  }
  return warnings;
}
