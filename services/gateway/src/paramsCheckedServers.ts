import { Server as SdkLegacyServer } from "@modelcontextprotocol/sdk/server/index.js";
import { ProtocolError, ProtocolErrorCode, Server as SdkModernServer, type ServerContext } from "@modelcontextprotocol/server";
import { JsonRpcError } from "./jsonRpc.js";

/*
 * The SDK servers, with a spec request whose params they cannot read answered -32602 (Invalid
 * params) naming the first problem. Both SDKs answer that failure of theirs as -32603 (Internal
 * error) with every zod issue, pretty-printed, as the message: a non-string cursor, an unknown
 * log level or `task: 5` read as the gateway's fault, in an answer that grows with the request.
 */

interface Issue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

function invalidParams(method: string, issue: Issue | undefined): string {
  return issue ? `invalid params for ${method}: ${issue.path.map(String).join(".") || "params"}: ${issue.message}` : `invalid params for ${method}`;
}

/** The first issue of a zod error's printed message: read from its start only, however long it is. */
function firstIssueOf(printed: string): Issue | undefined {
  if (!printed.startsWith("[")) return undefined;
  const found = /"path": \[([^\]]*)\][^{}]*?"message": "((?:[^"\\]|\\.){0,200})"/.exec(printed.slice(0, 4_096));
  if (!found) return undefined;
  const path = [...found[1]!.matchAll(/"((?:[^"\\]|\\.){0,64})"|(\d+)/g)].map((m) => m[1] ?? m[2]!);
  return { path, message: found[2]! };
}

/** The zod issues an SDK error carries as printed text, or "" when it carries none. */
function printedIssues(error: unknown): string {
  if (error instanceof ProtocolError) {
    const at = error.code === ProtocolErrorCode.InvalidParams ? error.message.indexOf(": [") : -1;
    return at < 0 ? "" : error.message.slice(at + 2);
  }
  return error instanceof Error && error.message.startsWith("[") ? error.message : "";
}

type RequestSchema = Parameters<SdkLegacyServer["setRequestHandler"]>[0];

/** The 1.x server (2025 sessions): each handler's request schema refuses unreadable params itself. */
export class LegacyServer extends SdkLegacyServer {
  override setRequestHandler<T extends RequestSchema>(requestSchema: T, handler: Parameters<SdkLegacyServer["setRequestHandler"]>[1]): void {
    const { params, method } = (requestSchema as unknown as { shape: { params?: ParamsSchema; method: { value: string } } }).shape;
    if (!params) return super.setRequestHandler(requestSchema, handler);
    const refusing = params.catch((ctx) => {
      const issue = ctx.error.issues[0];
      throw new JsonRpcError(ProtocolErrorCode.InvalidParams, invalidParams(method.value, issue && { path: ["params", ...issue.path], message: issue.message }));
    });
    super.setRequestHandler((requestSchema as unknown as { extend: (shape: object) => T }).extend({ params: refusing }), handler);
  }
}

interface ParamsSchema {
  catch(handler: (ctx: { error: { issues: readonly Issue[] } }) => never): unknown;
}

/**
 * The 2.x server (2026-07-28 requests). Its check of a spec request throws a plain `Error` whose
 * message is the zod error, printed (and `tools/call`'s a -32602 with all of it after a prefix):
 * either is answered as invalid params, the first problem only. Caught after the fact, not checked
 * again before: a valid request is read once, as before.
 */
export class ModernServer extends SdkModernServer {
  protected override _wrapHandler(method: string, handler: Parameters<SdkModernServer["_wrapHandler"]>[1]): ReturnType<SdkModernServer["_wrapHandler"]> {
    const wrapped = super._wrapHandler(method, handler);
    return async (request, ctx: ServerContext) => {
      try {
        return await wrapped(request, ctx);
      } catch (error) {
        const issue = firstIssueOf(printedIssues(error));
        throw issue ? new ProtocolError(ProtocolErrorCode.InvalidParams, invalidParams(method, issue)) : error;
      }
    };
  }
}
