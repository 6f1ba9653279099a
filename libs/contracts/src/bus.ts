import { z } from "zod";
import { ServerInfo, UpstreamTool } from "./tool.js";

/** Reply to a discovery `list` request. */
export const ListReply = z.strictObject({ serverInfo: ServerInfo, tools: z.array(UpstreamTool) });
export type ListReply = z.infer<typeof ListReply>;

/** Body of a reply whose `Manifold-Error` header is set. */
export const ErrorReply = z.strictObject({ message: z.string(), data: z.unknown().optional() });
export type ErrorReply = z.infer<typeof ErrorReply>;
