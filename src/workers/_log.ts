/**
 * The worker pool's logger. The library only logs; configuring LogTape is
 * up to the application.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";

/** Logger of the worker pool: category `["echo", "workers"]`. */
export const workersLogger: Logger = getLogger(["echo", "workers"]);
