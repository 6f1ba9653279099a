import { EVENT_SCHEMA_VERSION, type NewEvent } from "@manifold/contracts";

/** An event to append, of this schema version: what every decision returns. */
export const newEvent = <E extends NewEvent>(type: E["type"], data: E["data"]) => ({ type, version: EVENT_SCHEMA_VERSION, data }) as E;
