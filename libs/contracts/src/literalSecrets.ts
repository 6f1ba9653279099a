import type { z } from "zod";

/**
 * Names that carry credentials by convention, for header names, environment variables, query
 * parameters and command-line flags alike (docs/security.md lists what they catch:
 * Authorization, Proxy-Authorization, Cookie, X-Auth, X-Api-Key, X-Auth-Token, Private-Token,
 * *_TOKEN, *_SECRET, *_PASSWORD, api_key, access_token, client_secret, sig, key, …).
 */
export const CREDENTIAL_NAME =
  /auth|bearer|cookie|token|secret|passw|passphrase|api-?_?key|apikey|access[-_]?key|private[-_]?key|credential|session|signature|^sig$|(^|[-_])key$/i;

/** A flag or parameter that names where a credential is, not the credential itself. */
const REFERENCE_NAME = /[-_](file|path|env|var|dir)$/i;

/** A query, fragment or path parameter's name that says its value is a credential. */
const namesCredential = (name: string) => CREDENTIAL_NAME.test(name) && !REFERENCE_NAME.test(name);

const SECRETS_HINT = "as a reference (env:NAME or file:/path, see docs/security.md)";
const URL_PREFIX = /^[a-z][a-z0-9+.-]*:\/\//i;
const BEARER = /\b(bearer|basic)\s+\S/i;
/**
 * A JWT (a signed token is a credential whatever holds it): `eyJ` is a JSON header's `{"` in
 * base64url. Google IAP and WSO2 send one in `X-Jwt-Assertion`, a name no list above catches: it was
 * accepted as a plain header and kept in the event log.
 */
const JWT = /\beyJ[\w-]*\.[\w-]+\.[\w-]*/;
/** `Name: value` or `NAME=value` inside one argument. */
const ASSIGNMENT = /^([A-Za-z0-9_.-]+)\s*[:=]\s*\S/;
/** `--name=value`, `-name value`. */
const FLAG = /^--?([A-Za-z][A-Za-z0-9_.-]*)(=.*)?$/s;

/** Why a URL carries a credential (user info, a credential-like query, fragment or path parameter), or undefined. */
export function urlCredentialProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.username || url.password) return "carries credentials in its user info";
  for (const name of url.searchParams.keys()) {
    if (namesCredential(name)) return `carries a credential in its query parameter '${name}'`;
  }
  // The fragment (`#access_token=…`, as an OAuth implicit grant hands one out; sent nowhere) and
  // path parameters (`;jsessionid=…`) were accepted, and the URL is recorded and shown as written:
  // the event log, the admin API and every export kept the token.
  const fragment = [...new URLSearchParams(url.hash.slice(1)).keys()];
  const path = url.pathname.split("/").flatMap((segment) => segment.split(";").slice(1).map((param) => param.split("=")[0]!));
  for (const [where, names] of [["fragment", fragment], ["path", path]] as const) {
    const name = names.find(namesCredential);
    if (name !== undefined) return `carries a credential in its ${where} parameter '${name}'`;
  }
  return undefined;
}

/**
 * `text` (a URL `urlCredentialProblem` finds credentials in) without them, to be shown: no user
 * info, fragment or path parameters, and no query parameter of a credential-like name.
 */
export function urlWithoutCredentials(text: string): string {
  const url = new URL(text);
  url.username = url.password = url.hash = "";
  url.pathname = url.pathname
    .split("/")
    .map((segment) => segment.split(";")[0]!)
    .join("/");
  for (const name of [...url.searchParams.keys()]) if (namesCredential(name)) url.searchParams.delete(name);
  return url.toString();
}

/**
 * What `urlWithoutCredentials` takes out of `text`, each value alone (what a server refusing one
 * quotes): the user info, the fragment's and path parameters' values, and the values of query
 * parameters of a credential-like name, never the URL's other query values (a `format=markdown`
 * withheld would be blanked in every answer the process passes on).
 */
export function urlCredentialValues(text: string): string[] {
  if (!URL.canParse(text)) return [];
  const url = new URL(text);
  const values = (params: string) => params.split(/[&;]/).map((param) => param.slice(param.indexOf("=") + 1));
  return [
    ...[url.username, url.password].flatMap((part) => [part, decodedOrAsIs(part)]),
    ...values(url.hash.slice(1)),
    ...url.pathname.split("/").flatMap((segment) => segment.split(";").slice(1).flatMap(values)),
    ...[...url.searchParams].flatMap(([name, value]) => (namesCredential(name) ? [value] : [])),
  ].filter((value) => value !== "");
}

/** Percent-decoded, or as written when that is not valid percent-encoding. */
function decodedOrAsIs(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Refuses a URL with credentials; the message names the field's problem, never the URL. */
export const noUrlCredentials = (where: string) => (url: string, ctx: z.RefinementCtx) => {
  const problem = urlCredentialProblem(url);
  if (problem) ctx.addIssue({ code: "custom", message: `${where} ${problem}: put the credential in secretHeaders ${SECRETS_HINT}` });
};

/**
 * The same for the named URL fields of an object (an issuer, a JWKS URL, a resource indicator):
 * recorded in the event log and shown by the admin API and export, they carry no credentials.
 */
export const noUrlCredentialsIn =
  (fields: readonly string[]) =>
  (value: Record<string, unknown>, ctx: z.RefinementCtx): void => {
    for (const field of fields) {
      const problem = typeof value[field] === "string" ? urlCredentialProblem(value[field]) : undefined;
      if (problem) ctx.addIssue({ code: "custom", path: [field], message: `${field} ${problem}: it is recorded and shown as it is; a URL here carries no credentials` });
    }
  };

/** Names declared not to carry credentials (`plainPassthroughHeaders`): a credential-like one is refused, by its index. */
export const noCredentialNames = (where: string) => (names: string[], ctx: z.RefinementCtx) => {
  names.forEach((name, index) => {
    if (CREDENTIAL_NAME.test(name)) ctx.addIssue({ code: "custom", path: [index], message: `${where}: '${name}' looks like a credential's header, whose value is withheld whatever this says` });
  });
};

/**
 * Plain headers or variables: a credential-like name, a credential-looking value (`Bearer …`,
 * a URL with credentials) or a value the transport cannot carry (NUL; CR/LF in a header) is
 * refused, naming the entry and where the credential belongs.
 */
export const noLiteralSecrets = (what: "header" | "variable") => (map: Record<string, string>, ctx: z.RefinementCtx) => {
  const home = what === "header" ? "secretHeaders" : "secretEnv";
  for (const [name, value] of Object.entries(map)) {
    const looks = CREDENTIAL_NAME.test(name) ? "looks like a credential" : BEARER.test(value) || JWT.test(value) || (URL_PREFIX.test(value) && urlCredentialProblem(value)) ? "has a credential-like value" : undefined;
    if (looks) {
      ctx.addIssue({ code: "custom", path: [name], message: `${what} '${name}' ${looks}: put it in ${home} ${SECRETS_HINT}` });
    } else if (what === "header" ? /[^\t\x20-\x7e\x80-\xff]/.test(value) : value.includes("\0")) {
      ctx.addIssue({ code: "custom", path: [name], message: `${what} '${name}' has a value with characters a ${what} cannot carry (value withheld)` });
    }
  }
};

/** Why each argument carries a credential, by its index: a credential-like flag with a value, `NAME=value`, `Bearer x`, a JWT, a URL with credentials. */
function argumentProblems(args: readonly string[]): { index: number; problem: string }[] {
  const problems: { index: number; problem: string }[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const flag = FLAG.exec(arg);
    let problem: string | undefined;
    if (flag && CREDENTIAL_NAME.test(flag[1]!) && !REFERENCE_NAME.test(flag[1]!)) {
      const next = args[i + 1];
      if (flag[2] !== undefined || (next !== undefined && !next.startsWith("-"))) problem = `passes a credential with the flag '${flag[1]}'`;
    } else if (!flag) {
      const assigned = ASSIGNMENT.exec(arg);
      if (assigned && !URL_PREFIX.test(arg) && CREDENTIAL_NAME.test(assigned[1]!) && !REFERENCE_NAME.test(assigned[1]!)) problem = `assigns a credential to '${assigned[1]}'`;
      else if (BEARER.test(arg)) problem = "carries a credential";
      else if (URL_PREFIX.test(arg)) problem = urlCredentialProblem(arg);
    }
    // A JWT anywhere in an argument, after any flag (`--assertion=eyJ…`).
    if (!problem && JWT.test(arg)) problem = "carries a credential";
    if (problem) problems.push({ index: i, problem });
  }
  return problems;
}

/**
 * A stdio upstream's arguments: `--token=x`, `--api-key x`, `--password`, `Authorization: Bearer x`,
 * `API_KEY=x` and URLs with credentials are refused, naming the argument's index and flag.
 */
export const noSecretArgs = (args: string[], ctx: z.RefinementCtx) => {
  for (const { index, problem } of argumentProblems(args)) {
    ctx.addIssue({ code: "custom", path: [index], message: `argument ${index} ${problem}: give it to the upstream through secretEnv ${SECRETS_HINT}` });
  }
};

/**
 * A whole command line given as `command` (`npx -y server --token x`), read as its words are: one
 * that carries a credential is refused without repeating it. Before, it reached the stdio policy,
 * whose refusal ("… is not a command MANIFOLD_STDIO_COMMANDS lists") quoted the command whole.
 */
export const noSecretCommand = (command: string, ctx: z.RefinementCtx) => {
  const [first] = argumentProblems(command.trim().split(/\s+/));
  if (first) ctx.addIssue({ code: "custom", message: `command ${first.problem} (value withheld): name the program alone in command, its arguments in args, and give it the credential through secretEnv ${SECRETS_HINT}` });
};
