/**
 * The echo layer's loggers: children of the TCP and UDP layers' loggers,
 * for what only an echo has to say (an `until` request past its limit, an
 * answer too large to send).
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";

/** Logger of the TCP echo: category `["echo", "tcp", "echo"]`. */
export const tcpEchoLogger: Logger = getLogger(["echo", "tcp", "echo"]);

/** Logger of the UDP echo: category `["echo", "udp", "echo"]`. */
export const udpEchoLogger: Logger = getLogger(["echo", "udp", "echo"]);
