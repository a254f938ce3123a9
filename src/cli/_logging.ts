/**
 * Logging set-up for the command-line programs. Only programs configure
 * LogTape; the library merely logs. Records go to stderr, so stdout carries
 * only what a program is asked for.
 *
 * @module
 */

import { configure, getTextFormatter, jsonLinesFormatter, type LogRecord } from "@logtape/logtape";

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
  const encoder = new TextEncoder();
  const stderr = (record: LogRecord) => {
    Deno.stderr.writeSync(encoder.encode(formatter(record)));
  };
  await configure({
    sinks: { stderr },
    loggers: [
      { category: ["echo"], lowestLevel: level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}
