import { describe, expect, test } from "vitest";
import { z } from "zod";
import { StdioPolicyEnv, stdioEnvAllowed, stdioIssues, stdioPolicy } from "./stdioPolicy.js";
import { UpstreamTransport } from "./upstream.js";

const policyOf = (env: Record<string, string>) => stdioPolicy(z.object(StdioPolicyEnv).parse(env));
const stdio = (command: string, args: string[] = [], more: Record<string, unknown> = {}) => UpstreamTransport.parse({ type: "stdio", command, args, ...more });
const fields = (issues: { field: string }[]) => issues.map((i) => i.field);

describe("stdio command policy", () => {
  const policy = policyOf({ MANIFOLD_STDIO_COMMANDS: " /usr/bin/node  /opt/mcp/everything/dist/index.js stdio , /usr/local/bin/github-mcp," });

  test("entries are a command and the leading arguments it is pinned to", () => {
    expect(policy.commands).toEqual([
      { command: "/usr/bin/node", leadingArgs: ["/opt/mcp/everything/dist/index.js", "stdio"] },
      { command: "/usr/local/bin/github-mcp", leadingArgs: [] },
    ]);
    expect(Object.isFrozen(policy) && Object.isFrozen(policy.commands) && Object.isFrozen(policy.commands[0])).toBe(true);
  });

  test.each([
    ["the listed script with its arguments", stdio("/usr/bin/node", ["/opt/mcp/everything/dist/index.js", "stdio"]), []],
    ["more arguments after the pinned ones", stdio("/usr/bin/node", ["/opt/mcp/everything/dist/index.js", "stdio", "--verbose"]), []],
    ["a command listed alone, with any arguments", stdio("/usr/local/bin/github-mcp", ["--toolsets", "repos"]), []],
    ["a shell", stdio("/bin/sh", ["-c", "id"]), ["transport.command"]],
    ["the interpreter with another script", stdio("/usr/bin/node", ["/tmp/x.js"]), ["transport.args"]],
    ["the interpreter evaluating code", stdio("/usr/bin/node", ["-e", "require('child_process')"]), ["transport.args"]],
    ["the interpreter with options before the script", stdio("/usr/bin/node", ["--require", "/tmp/x.js", "/opt/mcp/everything/dist/index.js", "stdio"]), ["transport.args"]],
    ["the pinned script without its pinned argument", stdio("/usr/bin/node", ["/opt/mcp/everything/dist/index.js"]), ["transport.args"]],
    ["the interpreter by bare name", stdio("node", ["/opt/mcp/everything/dist/index.js", "stdio"]), ["transport.command"]],
    ["a code-loading variable on a listed command", stdio("/usr/local/bin/github-mcp", [], { env: { NODE_OPTIONS: "--require /tmp/x.js" } }), ["transport.env.NODE_OPTIONS"]],
    ["a code-loading variable given by reference", stdio("/usr/local/bin/github-mcp", [], { secretEnv: { LD_PRELOAD: "env:MANIFOLD_SECRET_X" } }), ["transport.secretEnv.LD_PRELOAD"]],
    ["a working directory", stdio("/usr/local/bin/github-mcp", [], { cwd: "/tmp" }), ["transport.cwd"]],
  ])("%s", (_what, transport, refused) => {
    expect(fields(stdioIssues(transport, policy))).toEqual(refused);
  });

  test("messages name the field and the variable, and not the pinned arguments", () => {
    // The admin API names what is listed; a connector's reason, which reaches agents in call errors, does not.
    const [command] = stdioIssues(stdio("/bin/sh", ["-c", "id"]), policy, true);
    expect(command!.message).toBe('transport.command: "/bin/sh" is not a command MANIFOLD_STDIO_COMMANDS lists (listed: /usr/bin/node, /usr/local/bin/github-mcp)');
    expect(stdioIssues(stdio("/bin/sh", ["-c", "id"]), policy)[0]!.message).toBe('transport.command: "/bin/sh" is not a command MANIFOLD_STDIO_COMMANDS lists');
    const [args] = stdioIssues(stdio("/usr/bin/node", ["/tmp/x.js"]), policy);
    expect(args!.message).toContain("MANIFOLD_STDIO_COMMANDS");
    expect(args!.message).not.toContain("/opt/mcp");
    const [env] = stdioIssues(stdio("/usr/local/bin/github-mcp", [], { env: { NODE_OPTIONS: "--require /tmp/x.js" } }), policy);
    expect(env!.message).toMatch(/^transport\.env\.NODE_OPTIONS: NODE_OPTIONS .*refused/);
    expect(env!.message).not.toContain("/tmp/x.js");
  });

  test("unset or empty, no stdio upstream may run; HTTP transports are not its concern", () => {
    for (const empty of [{} as Record<string, string>, { MANIFOLD_STDIO_COMMANDS: "" }, { MANIFOLD_STDIO_COMMANDS: " , " }, { MANIFOLD_STDIO_COMMANDS: "[]" }]) {
      const none = policyOf(empty);
      expect(none.commands).toEqual([]);
      expect(stdioIssues(stdio("/usr/bin/node", ["/opt/mcp/everything/dist/index.js", "stdio"]), none)[0]!.message).toContain("MANIFOLD_STDIO_COMMANDS lists no command");
    }
    expect(stdioIssues(UpstreamTransport.parse({ type: "streamable-http", url: "https://x.example/mcp" }), policyOf({}))).toEqual([]);
  });

  test("paths holding spaces or commas are listed as JSON", () => {
    const json = policyOf({ MANIFOLD_STDIO_COMMANDS: JSON.stringify([["/opt/My Tools/node", "/opt/a,b/server.js"]]) });
    expect(fields(stdioIssues(stdio("/opt/My Tools/node", ["/opt/a,b/server.js"]), json))).toEqual([]);
  });

  test.each([
    ["node /opt/server.js", /"node" is not an absolute path/],
    ["/usr/bin/node /opt/server.js,./bin/server", /"\.\/bin\/server" is not an absolute path/],
    ["[not json", /not valid JSON/],
    ['[["/usr/bin/node", ""]]', /non-empty words/],
    ['[[]]', /non-empty words/],
    ['["/usr/bin/node"]', /non-empty words/],
  ])("%s is refused at startup", (value, message) => {
    const result = z.object(StdioPolicyEnv).safeParse({ MANIFOLD_STDIO_COMMANDS: value });
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.path).toEqual(["MANIFOLD_STDIO_COMMANDS"]);
    expect(result.error!.issues[0]!.message).toMatch(message);
  });

  test.each([
    ...["NODE_OPTIONS", "NODE_PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME"].map((n) => [n, false] as const),
    ...["PERL5LIB", "PERL5OPT", "RUBYOPT", "RUBYLIB", "BASH_ENV", "ENV", "PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "HOME", "GIT_SSH_COMMAND"].map((n) => [n, false] as const),
    ...["GIT_CONFIG_COUNT", "npm_config_registry", "PIP_INDEX_URL", "UV_INDEX_URL", "GCONV_PATH", "XDG_CONFIG_HOME"].map((n) => [n, false] as const),
    // Found by a reviewer helper: npm reads its settings in any case (a listed `npx -y pkg` then
    // installed from the attacker's registry), git runs GIT_EXTERNAL_DIFF through a shell, uv trusts
    // an insecure host through a proxy, bun preloads code, go runs -toolexec, launchers take *_OPTS.
    ...["Npm_Config_Registry", "NPM_CONFIG_SCRIPT_SHELL", "GIT_EXTERNAL_DIFF", "GIT_PAGER", "UV_INSECURE_HOST", "HTTPS_PROXY", "https_proxy", "BUN_OPTIONS", "DENO_DIR"].map((n) => [n, false] as const),
    ...["GOFLAGS", "GOPROXY", "JAVA_OPTS", "MYAPP_OPTS", "PYTHONWARNINGS", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "node_options", "Path"].map((n) => [n, false] as const),
    // Ordinary settings pass (libuv's thread pool size is not uv's).
    ...["NODE_ENV", "PYTHONUNBUFFERED", "UV_THREADPOOL_SIZE", "GITHUB_TOOLSETS", "LOG_LEVEL", "ENVIRONMENT"].map((n) => [n, true] as const),
  ])("%s may be set: %s", (name, allowed) => {
    expect(stdioEnvAllowed(name)).toBe(allowed);
  });

  test("an entry in the JSON form may name the only variables a registration it matches may be given", () => {
    const named = policyOf({
      MANIFOLD_STDIO_COMMANDS: JSON.stringify([{ command: ["/usr/local/bin/github-mcp"], env: ["GITHUB_TOOLSETS", "GITHUB_TOKEN"] }, ["/usr/bin/node", "/opt/mcp/server.js"]]),
    });
    expect(named.commands[0]).toEqual({ command: "/usr/local/bin/github-mcp", leadingArgs: [], env: ["GITHUB_TOOLSETS", "GITHUB_TOKEN"] });
    expect(named.commands[1]).toEqual({ command: "/usr/bin/node", leadingArgs: ["/opt/mcp/server.js"] });
    const github = (more: Record<string, unknown>) => stdioIssues(stdio("/usr/local/bin/github-mcp", [], more), named);
    expect(github({ env: { GITHUB_TOOLSETS: "repos" }, secretEnv: { GITHUB_TOKEN: "env:MANIFOLD_SECRET_GH" } })).toEqual([]);
    // A variable no refusal knows of (a server's own way to load a plugin, say) is refused all the same.
    const [other] = github({ env: { PLUGIN_DIR: "/tmp/evil" } });
    expect(other).toEqual({ field: "transport.env.PLUGIN_DIR", message: "transport.env.PLUGIN_DIR: PLUGIN_DIR is not a variable MANIFOLD_STDIO_COMMANDS lets this command be given" });
    expect(fields(github({ secretEnv: { OTHER_TOKEN: "env:MANIFOLD_SECRET_X" } }))).toEqual(["transport.secretEnv.OTHER_TOKEN"]);
    // Named or not, a variable that loads code stays refused; an entry naming none allows any other.
    expect(fields(github({ env: { NODE_OPTIONS: "x" } }))).toEqual(["transport.env.NODE_OPTIONS"]);
    expect(stdioIssues(stdio("/usr/bin/node", ["/opt/mcp/server.js"], { env: { PLUGIN_DIR: "/opt" } }), named)).toEqual([]);
  });

  test.each([
    ['[{"command": ["/usr/bin/x"], "env": ["A B"]}]', /must list entries/],
    ['[{"command": ["/usr/bin/x"], "env": ["A"], "cwd": "/tmp"}]', /must list entries/],
    ['[{"command": ["x"], "env": []}]', /not an absolute path/],
  ])("the JSON form %s is refused at startup", (value, message) => {
    const result = z.object(StdioPolicyEnv).safeParse({ MANIFOLD_STDIO_COMMANDS: value });
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.message).toMatch(message);
  });
});
