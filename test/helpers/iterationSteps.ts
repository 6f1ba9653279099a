/** Counts every Map and Set iteration step from now until `stop` is called. */
function countingSteps(): { steps: () => number; stop: () => void } {
  const prototypes = [Object.getPrototypeOf(new Map().values()), Object.getPrototypeOf(new Set().values())] as { next: (...args: unknown[]) => unknown }[];
  const nexts = prototypes.map((p) => p.next);
  let steps = 0;
  prototypes.forEach(
    (p, i) =>
      (p.next = function (this: unknown, ...args: unknown[]) {
        steps++;
        return nexts[i]!.apply(this, args);
      }),
  );
  return { steps: () => steps, stop: () => prototypes.forEach((p, i) => (p.next = nexts[i]!)) };
}

/**
 * Counts the steps of every Map and Set iteration while `run` runs: the work a pass over held state
 * does, counted rather than timed (a unit test asserts no wall-clock figure).
 */
export function iterationSteps(run: () => void): number {
  const counting = countingSteps();
  try {
    run();
  } finally {
    counting.stop();
  }
  return counting.steps();
}

/**
 * `iterationSteps` over an asynchronous `run`: every step the process takes until it settles, so
 * only for a process doing nothing else meanwhile (a registry alone, asked once).
 */
export async function iterationStepsUntil<T>(run: () => Promise<T>): Promise<{ steps: number; value: T }> {
  const counting = countingSteps();
  try {
    const value = await run();
    return { steps: counting.steps(), value };
  } finally {
    counting.stop();
  }
}
