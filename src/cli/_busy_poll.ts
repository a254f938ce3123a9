/**
 * The server's `--busy-poll`: how long each event loop's waits look for
 * events without sleeping (see `waitOnMainThread` in `poll/_poller.ts`).
 *
 * @module
 */

import { mainThreadWaitSettings, spinWhereCoresAllow, waitOnMainThread } from "../poll/_poller.ts";
import { serverLogger } from "./_server_log.ts";

/** `--busy-poll`'s default, in microseconds. */
export const DEFAULT_BUSY_POLL = 50;

/**
 * Lets the waits of this event loop, one of `loops`, spin for up to
 * `microseconds` where the machine has the cores (`spinWhereCoresAllow`),
 * and says so at debug level. Nothing spins where waits do not sleep on
 * this thread (`main()` called from a program with sockets of its own).
 */
export function setBusyPoll(microseconds: number, loops: number): void {
  if (mainThreadWaitSettings() === null) return;
  waitOnMainThread(true, spinWhereCoresAllow(microseconds, loops));
  // What the poller now does, read back.
  const spin = Math.round(mainThreadWaitSettings()!.spinMicroseconds);
  if (spin > 0) {
    serverLogger.debug("Busy polling: a wait after events looks for more for up to {spin} µs", {
      spin,
    });
  } else if (microseconds > 0) {
    serverLogger.debug(
      "No busy polling: {cores} CPUs for {loops} event loops, where it needs 2 for each",
      { cores: navigator.hardwareConcurrency, loops },
    );
  }
}
