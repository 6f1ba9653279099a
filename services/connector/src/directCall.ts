import type { ParamHeader, TaskMode } from "@manifold/contracts";
import type { Progress } from "@modelcontextprotocol/client";
import type { Cancellation } from "./cancellation.js";
import type { CallLog } from "./callLog.js";
import type { Interaction } from "./heldCall.js";

/** What one call through the direct caller is given (`DirectCaller.callTool`). */
export interface DirectCallOptions {
  timeoutMs: number;
  cancellation?: Cancellation | undefined;
  /** When set, the upstream is asked for progress and each notification is handed here. */
  onprogress?: ((progress: Progress) => void) | undefined;
  /** When set, the upstream's requests to the agent (either era) are relayed to it. */
  interaction?: Interaction | undefined;
  /** When set, the upstream's log messages on the call's stream go here (2026-07-28: the request asks for them). */
  log?: CallLog | undefined;
  /** 2026-07-28: the request declares the tasks extension, so the upstream may answer with a task. */
  tasks?: boolean | undefined;
  /** 2025: how the call asks for a task (`CallOptions.task`); absent: it takes none. */
  task?: TaskMode | undefined;
  /** The most an answer may hold (a bus message's size): past it, reading stops (`ResultTooLarge`). */
  maxResultBytes?: number | undefined;
  /**
   * Runs a wait for the agent's answers to a 2026-07-28 round, when nothing of the call is
   * upstream: what the call holds there (its slots) is given back meanwhile and taken again for
   * the retry. Held through the wait, 32 rounds nobody answered kept another tenant's call of the
   * tool waiting 9.6 s, its whole budget.
   */
  idle?: (<T>(wait: () => Promise<T>) => Promise<T>) | undefined;
  /**
   * When the call's whole budget ends (epoch ms): no request of the call outlives it, and no round
   * starts after it. `timeoutMs` alone bounds the wait between chunks, so an upstream sending a
   * comment every 500 ms held its call, and its slots, for good; rounds answered just under it
   * made one call run 8 times its budget.
   */
  deadline?: number | undefined;
  /** Who makes the call, as the gateway vouches (`CallOptions.caller`): a question on its resumed stream may be relayed only for that caller. */
  caller?: string | undefined;
}

/** What the connection negotiated: a 2025-era session, or a 2026-07-28 upstream (no session). */
export type DirectEra =
  | { modern: false; sessionId: string | undefined; protocolVersion: string | undefined }
  | { modern: true; protocolVersion: string; paramHeaders?: ReadonlyMap<string, readonly ParamHeader[]> | undefined };
