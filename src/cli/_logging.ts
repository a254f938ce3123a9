/**
 * Logging set-up for the command-line programs. Only programs configure
 * LogTape; the library merely logs. Records go to stderr, so stdout carries
 * only what a program is asked for, through a queue that never makes the
 * program wait (see `_log_sink.ts`).
 *
 * @module
 */

import { configure, getTextFormatter, jsonLinesFormatter, type LogRecord } from "@logtape/logtape";
import { LOG_QUEUE_LIMIT, NonBlockingSink } from "./_log_sink.ts";

/** A `--log-level` value. */
export type LogLevelName = "debug" | "info" | "warning" | "error";
/** The `--log-level` values, most verbose first. */
export const LOG_LEVELS: readonly LogLevelName[] = ["debug", "info", "warning", "error"];
/** The `--log-format` values. */
export const LOG_FORMATS: readonly ("text" | "json")[] = ["text", "json"];

/** One line per record: objects (such as socket options) inline; errors keep their stack. */
function textFormatter(worker?: number) {
  return getTextFormatter({
    category: (category) =>
      worker === undefined ? category.join(".") : `${category.join(".")} w${worker}`,
    value: (value, inspect) =>
      typeof value === "string"
        ? value
        : value instanceof Error
        ? inspect(value)
        : Deno.inspect(value, { compact: true, breakLength: Infinity }),
  });
}

/**
 * Sends records of category `echo` at `level` and above to stderr; in a
 * worker of the server, each names `worker` (text: after the category;
 * JSON: a `worker` property).
 */
export async function setUpLogging(
  level: LogLevelName,
  format: "text" | "json" = "text",
  worker?: number,
): Promise<void> {
  const formatter = format === "json"
    ? (record: LogRecord) =>
      jsonLinesFormatter(
        worker === undefined ? record : { ...record, properties: { ...record.properties, worker } },
      )
    : textFormatter(worker);
  const notice = (dropped: number) =>
    formatter({
      category: ["echo", "log"],
      level: "warning",
      message: [`Dropped ${dropped} log lines: stderr was not read fast enough`],
      rawMessage: "Dropped log lines",
      timestamp: Date.now(),
      properties: worker === undefined ? {} : { worker },
    });
  sink = new NonBlockingSink(Deno.stderr, LOG_QUEUE_LIMIT, notice);
  const queue = sink;
  const stderr = (record: LogRecord) => queue.write(formatter(record));
  await configure({
    sinks: { stderr },
    loggers: [
      { category: ["echo"], lowestLevel: level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

let sink: NonBlockingSink | null = null;

/**
 * Waits until the log lines queued for stderr are written, at most `ms`
 * milliseconds: a program calls it before it exits.
 */
export async function flushLogs(ms = 1000): Promise<void> {
  await sink?.flush(ms);
}

/** Log lines dropped so far because stderr was not read fast enough. */
export function droppedLogLines(): number {
  return sink?.dropped ?? 0;
}
