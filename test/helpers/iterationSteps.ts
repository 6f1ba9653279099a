/**
 * Counts the steps of every Map and Set iteration while `run` runs: the work a pass over held state
 * does, counted rather than timed (a unit test asserts no wall-clock figure).
 */
export function iterationSteps(run: () => void): number {
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
  try {
    run();
  } finally {
    prototypes.forEach((p, i) => (p.next = nexts[i]!));
  }
  return steps;
}
