import { describe, expect, test } from "vitest";
import { TaskOwners } from "./taskOwners.js";

describe("TaskOwners", () => {
  test("a task is its creator's; an id created again is its latest creator's alone", () => {
    const owners = new TaskOwners();
    owners.created("1", "alice");
    expect(owners.owns("1", "alice")).toBe(true);
    expect(owners.owns("1", "bob")).toBe(false);
    expect(owners.owns("2", "alice")).toBe(false);
    owners.created("1", "bob");
    expect(owners.owns("1", "alice")).toBe(false);
    expect(owners.owns("1", "bob")).toBe(true);
  });
  test("one caller's many tasks push out only that caller's oldest", () => {
    const owners = new TaskOwners();
    owners.created("bob-1", "bob");
    for (let i = 0; i < 1_500; i++) owners.created(`m-${i}`, "mallory");
    expect(owners.owns("bob-1", "bob")).toBe(true);
    expect(owners.owns("m-0", "mallory")).toBe(false);
    expect(owners.owns("m-499", "mallory")).toBe(false);
    expect(owners.owns("m-500", "mallory")).toBe(true);
    expect(owners.owns("m-1499", "mallory")).toBe(true);
  });
  test("without a caller (no authentication), tasks are the anonymous caller's", () => {
    const owners = new TaskOwners();
    owners.created("1");
    expect(owners.owns("1")).toBe(true);
    expect(owners.owns("1", "alice")).toBe(false);
  });
});
