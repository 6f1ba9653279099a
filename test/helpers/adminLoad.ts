import { expect } from "vitest";
import type { AdminClient } from "./admin.js";

/**
 * One admin's commands (10 consumers created, one at a time) while another admin runs `reading`
 * four at a time in a loop (alone without it): each command's milliseconds, sorted.
 */
export async function commandsWhile(reading: (() => Promise<unknown>) | undefined, bob: AdminClient, tag: string): Promise<number[]> {
  let flooding = true;
  const readers = Array.from({ length: reading ? 4 : 0 }, async () => {
    while (flooding) await reading!();
  });
  if (reading) await new Promise((resolve) => setTimeout(resolve, 300));
  const took: number[] = [];
  for (let i = 0; i < 10; i++) {
    const started = performance.now();
    expect((await bob.post("/v1/consumers", { name: `bob-${tag}-${i}` })).status).toBe(201);
    took.push(performance.now() - started);
  }
  flooding = false;
  await Promise.all(readers);
  return took.sort((a, b) => a - b);
}
