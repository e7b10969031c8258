import type { Call, Invoke, Reply } from "../../call/call.js";

/**
 * Decides what happens when an attempt fails. `attempt` picks an endpoint (excluding
 * `call.tried`) and invokes it; the strategy may call it again with a copy of the call.
 */
export type FaultTolerance = (call: Call, attempt: Invoke) => Promise<Reply>;
