import { expect, test } from "vitest";
import { OwnedItems } from "./ownedItems.js";

test("counts per owner and the owner holding the most follow items as they come and go", () => {
  const owned = new OwnedItems<string>();
  expect(owned.largest()).toBeUndefined();
  owned.add("a", "a1");
  owned.add("b", "b1");
  owned.add("b", "b2");
  owned.add("b", "b2");
  expect(owned.count("b")).toBe(2);
  expect(owned.largest()).toEqual({ owner: "b", count: 2 });
  owned.delete("b", "b1");
  // Equal again: the first owner to reach the count is named.
  expect(owned.largest()).toEqual({ owner: "a", count: 1 });
  owned.delete("a", "a1");
  owned.delete("a", "a1");
  expect(owned.count("a")).toBe(0);
  expect(owned.largest()).toEqual({ owner: "b", count: 1 });
  owned.delete("b", "b2");
  expect(owned.largest()).toBeUndefined();
});

test("an owner's first item is the one added or touched least recently", () => {
  const owned = new OwnedItems<string>();
  for (const item of ["x", "y", "z"]) owned.add("a", item);
  expect(owned.first("a")).toBe("x");
  owned.touch("a", "x");
  expect(owned.first("a")).toBe("y");
  // Another owner's item, or one not held, moves nothing.
  owned.touch("b", "y");
  owned.touch("a", "w");
  expect(owned.first("a")).toBe("y");
  expect(owned.count("a")).toBe(3);
});
