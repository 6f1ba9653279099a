import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api.js";

/** How long typing pauses before a search is sent: not one search a keystroke. */
const PAUSE_MS = 250;
/** A search refused for now (429, 503) is sent again after its `Retry-After`, this many times at most, waiting at most `MAX_WAIT_S` each. */
const MAX_RESENDS = 3;
const MAX_WAIT_S = 10;
/** Refusals that say "not now": the admin's reads at once (429), or the registry's (503, another admin's reads filled it). */
const RESENT_STATUSES: ReadonlySet<number> = new Set([429, 503]);

/**
 * The answer to the latest search typed in a field. The registry bounds an admin's reads at once
 * (429 `too_many_reads`) and everyone's (503 `at_capacity`), both with `Retry-After`, and a search
 * per keystroke, each left running, met the first: so a search is sent once typing pauses, one at
 * a time (what is typed meanwhile waits for it, and only the latest is sent; answers to superseded
 * searches are dropped), and a search refused for now is sent again after its `Retry-After`. Any
 * other error is the answer, shown as one.
 */
export function useLatestSearch<T>(needle: string, search: (needle: string) => Promise<T>): { value?: T; error?: unknown } {
  const [answer, setAnswer] = useState<{ value?: T; error?: unknown }>({});
  const wanted = useRef(needle);
  const sent = useRef<string | undefined>(undefined);
  const running = useRef(false);
  const mounted = useRef(true);
  wanted.current = needle;
  useEffect(
    () => () => {
      mounted.current = false;
    },
    [],
  );
  useEffect(() => {
    const answerTo = async (asked: string): Promise<{ value?: T; error?: unknown } | undefined> => {
      for (let resends = 0; ; resends++) {
        try {
          return { value: await search(asked) };
        } catch (error) {
          if (!(error instanceof ApiError) || !RESENT_STATUSES.has(error.status) || resends >= MAX_RESENDS) return { error };
          await new Promise((resolve) => setTimeout(resolve, Math.min(error.retryAfterSeconds ?? 1, MAX_WAIT_S) * 1000));
          // Superseded while it waited: the latest is sent instead.
          if (!mounted.current || asked !== wanted.current) return undefined;
        }
      }
    };
    const send = async () => {
      if (running.current) return; // the running search sends the latest when it ends
      running.current = true;
      try {
        while (mounted.current && sent.current !== wanted.current) {
          const asked = (sent.current = wanted.current);
          const result = await answerTo(asked);
          if (result && mounted.current && asked === wanted.current) setAnswer(result);
        }
      } finally {
        running.current = false;
      }
    };
    // The first search (the field empty) goes at once.
    const timer = setTimeout(() => void send(), sent.current === undefined ? 0 : PAUSE_MS);
    return () => clearTimeout(timer);
  }, [needle]);
  return answer;
}
