import { describe, expect, test } from "vitest";
import { NO_CALL, SessionQuestions } from "./sessionQuestions.js";

describe("SessionQuestions: whether a question on a resumed stream can only be its call's caller's", () => {
  const session = (running: (string | undefined)[] = ["alice"]) => new SessionQuestions(() => running, () => undefined);

  test("alone on the session, every call since its caller's: harmless", () => {
    const questions = session();
    questions.ended("mallory");
    const since = questions.mark;
    questions.ended("alice");
    expect(questions.harmless(1, "m2", "alice", since)).toBe(true);
  });

  test("another caller's call running now, or ended since the call began: not", () => {
    expect(session(["alice", "mallory"]).harmless(1, "m2", "alice", 0)).toBe(false);
    const questions = session();
    questions.ended("mallory");
    // Alice's calls ending after Mallory's do not hide it.
    questions.ended("alice");
    questions.ended("alice");
    expect(questions.harmless(1, "m2", "alice", 0)).toBe(false);
    expect(questions.harmless(1, "m2", "alice", 1)).toBe(true);
  });

  test("an unknown caller is nobody's same caller", () => {
    const questions = session([undefined]);
    expect(questions.harmless(1, "m2", undefined, 0)).toBe(false);
    const ended = session();
    ended.ended(undefined);
    expect(ended.harmless(1, "m2", "alice", 0)).toBe(false);
  });

  test("an id another call's stream carried: not; one its own did: still harmless", () => {
    const questions = session();
    questions.asked("q", "m1");
    expect(questions.harmless("q", "m2", "alice", 0)).toBe(false);
    expect(questions.harmless("q", "m1", "alice", 0)).toBe(true);
    // One the session's GET stream carried (no call's) is no call's own.
    questions.asked("g", NO_CALL);
    expect(questions.harmless("g", "m1", "alice", 0)).toBe(false);
  });

  test("the ids remembered are bounded, the oldest forgotten first", () => {
    const questions = session();
    for (let i = 0; i < 257; i++) questions.asked(i, "m1");
    expect(questions.harmless(0, "m2", "alice", 0)).toBe(true);
    expect(questions.harmless(256, "m2", "alice", 0)).toBe(false);
  });
});
