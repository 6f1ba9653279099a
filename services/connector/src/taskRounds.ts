import { ManifoldError, mayAsk, type InputRequest, type InteractionCapabilities, type TaskRequest } from "@manifold/contracts";
import type { InputResponses } from "./heldCall.js";
import type { UpstreamSession } from "./upstreamSession.js";

/** How long a `tasks/get` waits for the question of a task that just asked (a 2025 upstream sends it on the `tasks/result` stream). */
const QUESTION_WAIT_MS = 2_000;
/** Open rounds one connector worker holds at most: beyond, a task's questions wait until one ends. */
const MAX_OPEN = 100;
/**
 * Open rounds one caller holds on a worker at most: a tenth of them. Without it one caller's tasks
 * left unanswered took every place, and every other caller's tasks showed no question until one
 * of hers ended, at the upstream's call timeout.
 */
const MAX_OPEN_PER_CALLER = MAX_OPEN / 10;

/** One 2025 upstream task's questions for a 2026-07-28 agent, held on a `tasks/result` request until answered. */
interface Round {
  readonly caller: string;
  /** The questions open now, under keys unique over the task's life (SEP-2663), and where their answers go. */
  asked?: { requests: Record<string, InputRequest>; answer: (responses: InputResponses) => void };
  /** Resolves when the first question arrives. */
  readonly arrived: Promise<void>;
}

/**
 * Input rounds of 2025 upstreams' tasks for 2026-07-28 agents. A 2025 upstream asks a task's
 * questions only on a `tasks/result` request; a 2026-07-28 agent polls `tasks/get` and answers
 * with `tasks/update` (the tasks extension). So when `tasks/get` finds the task `input_required`,
 * a `tasks/result` is sent upstream and held on this replica (which holds the session), its
 * questions are reported as the task's `inputRequests`, and the agent's `tasks/update` answers
 * them, only from the caller that was asked. The held request ends with the task, or at the
 * upstream's call timeout (its questions then go unanswered, which the upstream hears).
 */
export class TaskRounds {
  readonly #open = new Map<string, Round>();
  readonly #perCaller = new Map<string, number>();
  #questions = 0;

  /** The task's answer to `tasks/get` (JSON text), with the questions the agent may be asked when it is `input_required`. */
  async get(session: UpstreamSession, task: TaskOf, caller: string, capabilities: InteractionCapabilities, timeoutMs: number): Promise<string> {
    const text = await session.taskRequest({ method: "tasks/get", taskId: task.taskId, connection: task.connection }, timeoutMs);
    const state = JSON.parse(text) as Record<string, unknown>;
    if (state.status !== "input_required") return text;
    const key = keyOf(task);
    let round = this.#open.get(key);
    if (!round && this.#open.size < MAX_OPEN && (this.#perCaller.get(caller) ?? 0) < MAX_OPEN_PER_CALLER) {
      round = this.#hold(session, key, task, caller, capabilities, timeoutMs);
      await Promise.race([round.arrived, new Promise((resolve) => setTimeout(resolve, QUESTION_WAIT_MS).unref())]);
    }
    const asked = round?.caller === caller ? (round.asked?.requests ?? {}) : {};
    const inputRequests = Object.fromEntries(Object.entries(asked).filter(([, request]) => mayAsk(capabilities, request)));
    return JSON.stringify({ ...state, inputRequests });
  }

  /** The agent's answers (`tasks/update`): those to open questions of the caller's round go upstream; others are ignored, as the extension says. */
  update(task: TaskOf, caller: string, responses: Record<string, Record<string, unknown>>): void {
    const round = this.#open.get(keyOf(task));
    if (!round || round.caller !== caller || !round.asked) return;
    const picked = Object.fromEntries(Object.entries(responses).filter(([key]) => key in round.asked!.requests));
    if (Object.keys(picked).length === 0) return;
    const { answer } = round.asked;
    round.asked = undefined;
    answer(picked);
  }

  #hold(session: UpstreamSession, key: string, task: TaskOf, caller: string, capabilities: InteractionCapabilities, timeoutMs: number): Round {
    let arrive!: () => void;
    const round: Round = { caller, arrived: new Promise<void>((resolve) => (arrive = resolve)) };
    this.#open.set(key, round);
    this.#perCaller.set(caller, (this.#perCaller.get(caller) ?? 0) + 1);
    // The session relays the upstream's request to this ask (`RunningCalls.relay`), under its own key.
    const ask = (requests: Record<string, InputRequest>): Promise<InputResponses> =>
      new Promise<InputResponses>((resolve, reject) => {
        const refused = Object.values(requests).find((request) => !mayAsk(capabilities, request));
        if (refused) return reject(new ManifoldError("forbidden", `request refused: the caller did not declare '${refused.method}' or its virtual server does not allow it`));
        const keyed = Object.entries(requests).map(([own, request]) => [own, `q${++this.#questions}`, request] as const);
        const timer = setTimeout(() => {
          round.asked = undefined;
          reject(new ManifoldError("upstream_timeout", "the caller did not answer the task's question in time"));
        }, timeoutMs).unref();
        round.asked = {
          requests: Object.fromEntries(keyed.map(([, ours, request]) => [ours, request])),
          answer: (responses) => {
            clearTimeout(timer);
            resolve(Object.fromEntries(keyed.filter(([, ours]) => responses[ours]).map(([own, ours]) => [own, responses[ours]!])));
          },
        };
        arrive();
      });
    void session
      .taskRequest({ method: "tasks/result", taskId: task.taskId, connection: task.connection }, timeoutMs, { ask, capabilities }, caller)
      .catch(() => undefined)
      .finally(() => {
        this.#open.delete(key);
        const left = this.#perCaller.get(caller)! - 1;
        if (left > 0) this.#perCaller.set(caller, left);
        else this.#perCaller.delete(caller);
        arrive();
      });
    return round;
  }
}

/** A task, by the upstream's id and the connection that created it (`TaskRequest.connection`). */
type TaskOf = Pick<TaskRequest, "taskId" | "connection">;

/** Task ids are the upstream connection's own (connection ids are never reused): the key names the connection too. */
const keyOf = (task: TaskOf): string => `${task.connection}\0${task.taskId}`;
