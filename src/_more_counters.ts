/**
 * How a layer above a server adds counters of its own to the server's
 * (`counters`, and the line logged when it stops): an option under a
 * symbol no entry point exports, so it is not part of the servers' API.
 * The echo's faults count this way.
 *
 * @module
 */

/** The option: a function that returns the counters to add, read with each snapshot. */
export const moreCounters: unique symbol = Symbol("moreCounters");

/** Options that may carry {@linkcode moreCounters}. */
export interface WithMoreCounters {
  [moreCounters]?: () => Record<string, unknown>;
}
