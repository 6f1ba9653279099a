import { z } from "zod";
import type { UpstreamTransport } from "./upstream.js";

/**
 * Which programs a stdio upstream may run: a registration runs as the connector's user, so
 * without a list an admin token could run anything there. The registry refuses a registration
 * outside the list and the connector refuses to spawn one, from the same variable (spread these
 * fields into each service's environment schema).
 */
export const StdioPolicyEnv = {
  /**
   * Comma-separated entries, each a command by its absolute path followed by the arguments a
   * registration's `args` must start with (`/usr/bin/node /opt/mcp/server.js,/usr/local/bin/github-mcp`);
   * for paths holding spaces or commas, a JSON array of such word arrays. Unset or empty: no stdio upstream.
   */
  MANIFOLD_STDIO_COMMANDS: z
    .string()
    .default("")
    .transform((value, ctx) => {
      const entries = parseEntries(value);
      if (typeof entries === "string") {
        ctx.addIssue({ code: "custom", message: entries });
        return z.NEVER;
      }
      return entries;
    }),
};

export interface StdioCommand {
  /** The program, by absolute path: matched against a registration's `command` as written. */
  readonly command: string;
  /** What a registration's `args` must begin with, word for word (an interpreter pinned to its script). */
  readonly leadingArgs: readonly string[];
}

export interface StdioPolicy {
  readonly commands: readonly StdioCommand[];
}

export const stdioPolicy = (config: { MANIFOLD_STDIO_COMMANDS: readonly (readonly string[])[] }): StdioPolicy =>
  Object.freeze({
    commands: Object.freeze(config.MANIFOLD_STDIO_COMMANDS.map(([command, ...leadingArgs]) => Object.freeze({ command: command!, leadingArgs: Object.freeze(leadingArgs) }))),
  });

/** The entries as word lists, or why the value is refused. */
function parseEntries(value: string): string[][] | string {
  const trimmed = value.trim();
  let entries: unknown;
  if (trimmed.startsWith("[")) {
    try {
      entries = JSON.parse(trimmed);
    } catch {
      return "is not valid JSON (a value starting with [ must be an array of arrays of words)";
    }
  } else {
    entries = trimmed.split(",").map((entry) => entry.trim().split(/\s+/).filter(Boolean)).filter((words) => words.length > 0);
  }
  const words = z.array(z.array(z.string().min(1)).min(1)).safeParse(entries);
  if (!words.success) return "must list entries of one or more non-empty words (a JSON value: an array of arrays of strings)";
  // A bare name would run whatever the connector's PATH finds first when the upstream starts.
  const relative = words.data.find(([command]) => !command!.startsWith("/"));
  if (relative) return `${JSON.stringify(relative[0])} is not an absolute path: list each command by its absolute path (e.g. the output of \`command -v ${relative[0]}\`)`;
  return words.data;
}

/**
 * Variables that make a process (or the interpreter, linker, shell or package tool it is) load
 * or run code other than the listed command's: refused in `env` and `secretEnv` whatever the list
 * says, since they would turn any listed entry into "run anything". Names are matched as Linux
 * does, case-sensitively.
 */
const CODE_LOADING_ENV = new Set([
  "NODE_OPTIONS",
  "NODE_PATH",
  "NODE_REPL_EXTERNAL_MODULE",
  "PYTHONPATH",
  "PYTHONSTARTUP",
  "PYTHONHOME",
  "PYTHONUSERBASE",
  "PYTHONEXECUTABLE",
  "PYTHONPLATLIBDIR",
  "PYTHONBREAKPOINT",
  "PERL5LIB",
  "PERLLIB",
  "PERL5OPT",
  "PERL5DB",
  "RUBYOPT",
  "RUBYLIB",
  "GEM_HOME",
  "GEM_PATH",
  "BASH_ENV",
  "ENV",
  "ZDOTDIR",
  "SHELLOPTS",
  "BASHOPTS",
  "PS4",
  "PROMPT_COMMAND",
  "IFS",
  "SHELL",
  "PATH",
  "HOME",
  "JAVA_TOOL_OPTIONS",
  "_JAVA_OPTIONS",
  "JDK_JAVA_OPTIONS",
  "CLASSPATH",
  "DOTNET_STARTUP_HOOKS",
  "GCONV_PATH",
  "OPENSSL_CONF",
  "OPENSSL_ENGINES",
  "GIT_SSH",
  "GIT_SSH_COMMAND",
  "GIT_EXEC_PATH",
  "GIT_ASKPASS",
  "SSH_ASKPASS",
  "EDITOR",
  "VISUAL",
  "PAGER",
  "BROWSER",
  "UV_INDEX",
  "UV_INDEX_URL",
  "UV_EXTRA_INDEX_URL",
  "UV_DEFAULT_INDEX",
  "UV_FIND_LINKS",
  "UV_CONFIG_FILE",
]);
/** Whole families: the dynamic linker's, git's configuration, npm's and pip's settings (a registry to install from), XDG config homes. */
const CODE_LOADING_PREFIXES = ["LD_", "DYLD_", "GIT_CONFIG", "npm_config_", "NPM_CONFIG_", "PIP_", "XDG_"];

/** Whether a stdio upstream's environment may set this variable. */
export const stdioEnvAllowed = (name: string): boolean => !CODE_LOADING_ENV.has(name) && !CODE_LOADING_PREFIXES.some((prefix) => name.startsWith(prefix));

const startsWith = (args: readonly string[], leading: readonly string[]) => leading.every((word, i) => args[i] === word);

/** Everything in a stdio transport outside the policy, with the field that holds it (none for HTTP transports). */
export function stdioIssues(transport: UpstreamTransport, policy: StdioPolicy): { field: string; message: string }[] {
  if (transport.type !== "stdio") return [];
  const issues: { field: string; message: string }[] = [];
  const issue = (field: string, problem: string) => issues.push({ field, message: `${field}: ${problem}` });
  const command = JSON.stringify(transport.command);
  const sameCommand = policy.commands.filter((entry) => entry.command === transport.command);
  if (policy.commands.length === 0) {
    issue("transport.command", "no stdio upstream may run here: MANIFOLD_STDIO_COMMANDS lists no command");
  } else if (sameCommand.length === 0) {
    const listed = [...new Set(policy.commands.map((entry) => entry.command))].join(", ");
    issue("transport.command", `${command} is not a command MANIFOLD_STDIO_COMMANDS lists (listed: ${listed})`);
  } else if (!sameCommand.some((entry) => startsWith(transport.args, entry.leadingArgs))) {
    issue("transport.args", `${command} may run only with the leading arguments MANIFOLD_STDIO_COMMANDS gives it, and these differ`);
  }
  for (const [field, variables] of [["env", transport.env], ["secretEnv", transport.secretEnv]] as const) {
    for (const name of Object.keys(variables)) {
      if (!stdioEnvAllowed(name)) issue(`transport.${field}.${name}`, `${name} would make the process load other code than the command MANIFOLD_STDIO_COMMANDS lists, and is refused for stdio upstreams`);
    }
  }
  // Relative paths in an entry (and a Python `-m`, a `.env` a server reads) resolve against the
  // working directory: the connector's own, so an entry means the same for every registration.
  if (transport.cwd !== undefined) issue("transport.cwd", "is refused: a stdio upstream runs in the connector's working directory, so what MANIFOLD_STDIO_COMMANDS lists means the same for every registration (wrap the command in a script that changes directory)");
  return issues;
}
