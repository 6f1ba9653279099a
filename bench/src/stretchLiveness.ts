// Preloaded (`--import`) into the gateway and connector that countInstructions.ts runs: under
// valgrind the measured process runs ~50x slower and its heartbeats come late, so the requester
// would give its calls up as lost and the connector would drain itself. Only these copies are
// stretched; nothing else loads this file.
import { CallLiveness } from "@manifold/contracts";

const STRETCH = 40;
const liveness = CallLiveness as { beatMs: number; silenceMs: number };
liveness.beatMs *= STRETCH;
liveness.silenceMs *= STRETCH;
