import { z } from "zod";
import { shownTransport } from "./recordedSecrets.js";
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
   * for paths holding spaces or commas, a JSON array of such word arrays. In the JSON form an entry
   * may also be `{"command": [words], "env": [names]}`: registrations it matches may set only
   * those variables. Unset or empty: no stdio upstream.
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
  /** The only variables a registration it matches may set (`env`, `secretEnv`); absent: any not refused. */
  readonly env?: readonly string[];
}

/** An entry as configured: its words, or (JSON form) its words and the variables it lets be set. */
export type StdioEntry = readonly string[] | { readonly command: readonly string[]; readonly env: readonly string[] };
const wordsOf = (entry: StdioEntry): readonly string[] => ("command" in entry ? entry.command : entry);

export interface StdioPolicy {
  readonly commands: readonly StdioCommand[];
}

export const stdioPolicy = (config: { MANIFOLD_STDIO_COMMANDS: readonly StdioEntry[] }): StdioPolicy =>
  Object.freeze({
    commands: Object.freeze(
      config.MANIFOLD_STDIO_COMMANDS.map((entry) => {
        const [command, ...leadingArgs] = wordsOf(entry);
        return Object.freeze({ command: command!, leadingArgs: Object.freeze(leadingArgs), ...("env" in entry ? { env: Object.freeze([...entry.env]) } : {}) });
      }),
    ),
  });

const Words = z.array(z.string().min(1)).min(1);
const EntrySchema = z.union([Words, z.strictObject({ command: Words, env: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)) })]);

/** The entries, or why the value is refused. */
function parseEntries(value: string): StdioEntry[] | string {
  const trimmed = value.trim();
  let entries: unknown;
  if (trimmed.startsWith("[")) {
    try {
      entries = JSON.parse(trimmed);
    } catch {
      return "is not valid JSON (a value starting with [ must be an array of entries: arrays of words, or {\"command\": [words], \"env\": [names]})";
    }
  } else {
    entries = trimmed.split(",").map((entry) => entry.trim().split(/\s+/).filter(Boolean)).filter((words) => words.length > 0);
  }
  const parsed = z.array(EntrySchema).safeParse(entries);
  if (!parsed.success) return "must list entries of one or more non-empty words (a JSON value: an array of arrays of strings, or of {\"command\": [words], \"env\": [variable names]})";
  // A bare name would run whatever the connector's PATH finds first when the upstream starts.
  const relative = parsed.data.map(wordsOf).find(([command]) => !command!.startsWith("/"));
  if (relative) return `${JSON.stringify(relative[0])} is not an absolute path: list each command by its absolute path (e.g. the output of \`command -v ${relative[0]}\`)`;
  return parsed.data;
}

/**
 * Variables that make a process (or the interpreter, linker, shell, package tool or launcher it
 * is) load or run code other than the listed command's, fetch it from elsewhere, or trust another
 * server's certificate for it: refused in `env` and `secretEnv` whatever the list says, since they
 * would turn a listed entry into "run anything". Matched without regard to case: npm, for one,
 * reads `Npm_Config_Registry` as `npm_config_registry`. A list of known ways, not a proof
 * (docs/security.md, "Stdio commands").
 */
const CODE_LOADING_ENV = new Set(
  [
    "NODE_OPTIONS", "NODE_PATH", "NODE_REPL_EXTERNAL_MODULE", "NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED",
    "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONEXECUTABLE", "PYTHONPLATLIBDIR", "PYTHONBREAKPOINT", "PYTHONWARNINGS", "PYTHONINSPECT", "PYTHONHTTPSVERIFY",
    "PERL5LIB", "PERLLIB", "PERL5OPT", "PERL5DB",
    "RUBYOPT", "RUBYLIB", "GEM_HOME", "GEM_PATH", "RUBYGEMS_GEMDEPS", "BUNDLE_GEMFILE",
    "BASH_ENV", "ENV", "ZDOTDIR", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "IFS", "SHELL", "PATH", "HOME",
    "CLASSPATH", "JAVA_HOME", "MAVEN_OPTS", "GRADLE_OPTS",
    "DOTNET_STARTUP_HOOKS",
    "GOFLAGS", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GONOSUMCHECK", "GOINSECURE", "GOPRIVATE", "GONOPROXY", "GOTOOLCHAIN", "GOPATH", "GOROOT", "GOENV", "CC", "CXX",
    "GCONV_PATH", "OPENSSL_CONF", "OPENSSL_ENGINES", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "FTP_PROXY",
    "SSH_ASKPASS", "EDITOR", "VISUAL", "PAGER", "BROWSER",
  ].map((name) => name.toUpperCase()),
);
/**
 * Whole families: the dynamic linker's; git's (it runs configured programs: `GIT_EXTERNAL_DIFF`,
 * `GIT_SSH_COMMAND`, …); the package tools' settings (a registry or index to install from: npm,
 * yarn, pnpm, pip, uv, bun, deno); cgo's; XDG config homes; and launcher options (`JAVA_OPTS`,
 * `<APP>_OPTS`, `JAVA_TOOL_OPTIONS`, `BUN_OPTIONS`).
 */
const CODE_LOADING_PREFIXES = ["LD_", "DYLD_", "GIT_", "NPM_CONFIG_", "YARN_", "PNPM_", "PIP_", "UV_", "BUN_", "DENO_", "CGO_", "XDG_"];
const CODE_LOADING_SUFFIXES = ["_OPTS", "_OPTIONS"];
/** Exceptions to the families: libuv's thread pool size (node's too) is not uv's. */
const ALLOWED_IN_FAMILIES = new Set(["UV_THREADPOOL_SIZE"]);

/** Whether a stdio upstream's environment may set this variable. */
export function stdioEnvAllowed(name: string): boolean {
  const upper = name.toUpperCase();
  if (ALLOWED_IN_FAMILIES.has(upper)) return true;
  return !CODE_LOADING_ENV.has(upper) && !CODE_LOADING_PREFIXES.some((prefix) => upper.startsWith(prefix)) && !CODE_LOADING_SUFFIXES.some((suffix) => upper.endsWith(suffix));
}

const startsWith = (args: readonly string[], leading: readonly string[]) => leading.every((word, i) => args[i] === word);

/**
 * Everything in a stdio transport outside the policy, with the field that holds it (none for HTTP
 * transports). `listCommands`: name the listed commands in the refusal (the admin API's; a
 * connector's reason reaches agents in call errors, and the list is the operator's).
 */
export function stdioIssues(transport: UpstreamTransport, policy: StdioPolicy, listCommands = false): { field: string; message: string }[] {
  if (transport.type !== "stdio") return [];
  const issues: { field: string; message: string }[] = [];
  const issue = (field: string, problem: string) => issues.push({ field, message: `${field}: ${problem}` });
  // As shown: a command line recorded with a credential in it before the registry refused that
  // (events replay as written) was quoted whole in the connector's refusal, its health reason and log.
  const command = JSON.stringify((shownTransport(transport).transport as typeof transport).command);
  const sameCommand = policy.commands.filter((entry) => entry.command === transport.command);
  if (policy.commands.length === 0) {
    issue("transport.command", "no stdio upstream may run here: MANIFOLD_STDIO_COMMANDS lists no command");
  } else if (sameCommand.length === 0) {
    const listed = listCommands ? ` (listed: ${[...new Set(policy.commands.map((entry) => entry.command))].join(", ")})` : "";
    issue("transport.command", `${command} is not a command MANIFOLD_STDIO_COMMANDS lists${listed}`);
  }
  const matching = sameCommand.filter((entry) => startsWith(transport.args, entry.leadingArgs));
  if (sameCommand.length > 0 && matching.length === 0) {
    issue("transport.args", `${command} may run only with the leading arguments MANIFOLD_STDIO_COMMANDS gives it, and these differ`);
  }
  // Entries that name their variables allow those alone (any entry that names none allows any not refused).
  const named = matching.length > 0 && matching.every((entry) => entry.env) ? new Set(matching.flatMap((entry) => entry.env!)) : undefined;
  for (const [field, variables] of [["env", transport.env], ["secretEnv", transport.secretEnv]] as const) {
    for (const name of Object.keys(variables)) {
      if (!stdioEnvAllowed(name)) issue(`transport.${field}.${name}`, `${name} would make the process load other code than the command MANIFOLD_STDIO_COMMANDS lists, and is refused for stdio upstreams`);
      else if (named && !named.has(name)) issue(`transport.${field}.${name}`, `${name} is not a variable MANIFOLD_STDIO_COMMANDS lets this command be given`);
    }
  }
  // Relative paths in an entry (and a Python `-m`, a `.env` a server reads) resolve against the
  // working directory: the connector's own, so an entry means the same for every registration.
  if (transport.cwd !== undefined) issue("transport.cwd", "is refused: a stdio upstream runs in the connector's working directory, so what MANIFOLD_STDIO_COMMANDS lists means the same for every registration (wrap the command in a script that changes directory)");
  return issues;
}
