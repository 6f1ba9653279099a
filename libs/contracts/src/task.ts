import { ManifoldError } from "./errors.js";

/** What a Task's `status` may be (2025-11-25). */
const STATUSES: ReadonlySet<unknown> = new Set(["working", "input_required", "completed", "failed", "cancelled"]);
/**
 * Shortest wait between polls of a task an upstream may ask for: an agent waits the Task's
 * `pollInterval` before it polls again, and each poll is a request upstream. An upstream's 0 had
 * a 1.x agent poll 228 times in 4.1 s for one task.
 */
export const MIN_POLL_INTERVAL_MS = 100;
/** Longest `statusMessage` passed on: a status, not a payload. */
const MAX_STATUS_MESSAGE = 1_024;
/** An ISO 8601 timestamp, as the Task's date fields are; at most 64 characters. */
const timestamp = (value: unknown): value is string => typeof value === "string" && value.length <= 64;

/**
 * An upstream's Task (2025-11-25 shape, as the bus carries it) with its own fields only, bounded:
 * the upstream's bytes are hostile, and anything else in them (a 300 KB `createdAt` object carrying
 * a note to the agent, a status no Task has) would reach the agent, and a `pollInterval` under
 * `MIN_POLL_INTERVAL_MS` would have its agents poll hot. A Task without a Task's id and
 * status is no Task: `upstream_error`.
 */
export function boundedTask(task: Record<string, unknown>): Record<string, unknown> {
  const { taskId, status, statusMessage, createdAt, lastUpdatedAt, ttl, pollInterval } = task;
  if (typeof taskId !== "string" || !STATUSES.has(status)) throw new ManifoldError("upstream_error", "the upstream's task has no task id or no status a task has");
  return {
    taskId,
    status,
    ...(typeof statusMessage === "string" ? { statusMessage: statusMessage.slice(0, MAX_STATUS_MESSAGE) } : {}),
    ...(timestamp(createdAt) ? { createdAt } : {}),
    ...(timestamp(lastUpdatedAt) ? { lastUpdatedAt } : {}),
    ttl: typeof ttl === "number" ? ttl : null,
    ...(typeof pollInterval === "number" ? { pollInterval: Math.max(pollInterval, MIN_POLL_INTERVAL_MS) } : {}),
  };
}
