import { ErrorCode, isErrorCode, jsonRpcCodeOf } from "@manifold/contracts";
import type { HttpAnswer, HttpCase } from "./exchange.js";

/** JSON-RPC codes a client may see: Manifold's own table (either era's code), and the protocol's from the MCP SDK. */
const DOCUMENTED_JSON_RPC = new Set<number>([...(Object.keys(ErrorCode) as ErrorCode[]).flatMap((code) => [jsonRpcCodeOf(code, "legacy"), jsonRpcCodeOf(code, "modern")]), -32700, -32600, -32601, -32602, -32603, -32000, -32001]);
/** The only 5xx a hostile request may get: the documented unavailable states. */
const DOCUMENTED_503 = new Set(["bus_unavailable", "shutting_down", "at_capacity"]);

export interface Verdict {
  /** `status code` for the tallies, e.g. `400 parse_error`. */
  outcome: string;
  /** What is wrong with the answer, when something is. */
  violation?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function envelopeProblem(m: unknown): string | undefined {
  if (!isObject(m) || m.jsonrpc !== "2.0" || !("id" in m)) return "not a JSON-RPC response envelope";
  if (("result" in m) === ("error" in m)) return "neither (or both) result and error";
  if ("error" in m) {
    const error = m.error;
    if (!isObject(error) || typeof error.code !== "number" || typeof error.message !== "string") return "a malformed error";
    if (!DOCUMENTED_JSON_RPC.has(error.code)) return `undocumented JSON-RPC code ${error.code}`;
    const data = error.data;
    if (isObject(data) && data.code !== undefined && !isErrorCode(data.code)) return `undocumented data.code ${String(data.code)}`;
  }
  return undefined;
}

const codeOf = (m: unknown) => {
  const error = isObject(m) && isObject(m.error) ? m.error : undefined;
  if (!error) return "result";
  return String(isObject(error.data) && error.data.code !== undefined ? error.data.code : error.code);
};

/** An MCP answer: every body a JSON-RPC envelope (or a batch of them) with documented codes; no undocumented 5xx. */
export function judgeMcp(c: HttpCase, a: HttpAnswer): Verdict {
  if (c.method === "HEAD") return a.text === "" ? { outcome: `${a.status} (head)` } : { outcome: `${a.status}`, violation: "HEAD answered with a body" };
  if (a.status === 202 && a.text === "") return { outcome: "202 accepted" };
  const type = String(a.headers["content-type"] ?? "");
  let messages: unknown[];
  try {
    if (type.startsWith("text/event-stream")) {
      messages = a.text.split("\n").filter((l) => l.startsWith("data:")).map((l) => JSON.parse(l.slice(5)) as unknown);
    } else {
      const parsed = JSON.parse(a.text) as unknown;
      messages = Array.isArray(parsed) ? parsed : [parsed];
    }
  } catch {
    return { outcome: `${a.status} (not JSON)`, violation: `body is not JSON: ${a.text.slice(0, 120)}` };
  }
  if (messages.length === 0) return { outcome: `${a.status} (empty)`, violation: "no JSON-RPC message in the answer" };
  const outcome = `${a.status} ${codeOf(messages[0])}`;
  for (const m of messages) {
    const problem = envelopeProblem(m);
    if (problem) return { outcome, violation: `${problem}: ${JSON.stringify(m).slice(0, 160)}` };
  }
  if (a.status >= 500 && !(a.status === 503 && DOCUMENTED_503.has(codeOf(messages[0])))) return { outcome, violation: `HTTP ${a.status}` };
  return { outcome };
}

/** An admin answer: errors are `{ error: { code, message } }` with a documented code; no 5xx at all. */
export function judgeAdmin(c: HttpCase, a: HttpAnswer): Verdict {
  if (c.method === "HEAD") return { outcome: `${a.status} (head)`, ...(a.status >= 500 ? { violation: `HTTP ${a.status}` } : {}) };
  if (a.status < 400) return { outcome: `${a.status}` };
  let body: unknown;
  try {
    body = JSON.parse(a.text);
  } catch {
    return { outcome: `${a.status} (not JSON)`, violation: `body is not JSON: ${a.text.slice(0, 120)}` };
  }
  const error = isObject(body) && isObject(body.error) ? body.error : undefined;
  const outcome = `${a.status} ${error ? String(error.code) : "?"}`;
  if (!error || !isErrorCode(error.code) || typeof error.message !== "string") return { outcome, violation: `not the documented error shape: ${a.text.slice(0, 160)}` };
  if (a.status >= 500) return { outcome, violation: `HTTP ${a.status}` };
  return { outcome };
}
