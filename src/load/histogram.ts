/**
 * Latencies in an HdrHistogram (the `hdr-histogram-js` package): three
 * significant digits from 1 µs to an hour, in memory that does not grow with
 * the run (about 190 KiB), and the percentile-distribution text
 * HdrHistogram's plotters read.
 *
 * @module
 */

import * as hdr from "hdr-histogram-js";

/** The longest latency recorded as itself, in microseconds; longer ones are recorded as this. */
const HIGHEST_US = 3_600_000_000;

/**
 * Latencies, recorded in microseconds with three significant digits, from
 * 1 µs to an hour (longer ones count as an hour).
 *
 * @example Record two latencies and read a percentile
 * ```ts
 * import { LatencyHistogram } from "@x/echo/bench";
 *
 * const latencies = new LatencyHistogram();
 * latencies.recordMs(0.020);
 * latencies.recordMs(0.030);
 * console.log(latencies.atPercentile(50)); // 20
 * ```
 */
export class LatencyHistogram {
  readonly #histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
    bitBucketSize: 64,
    autoResize: false,
    useWebAssembly: false,
  });

  /** Counts by power of two of microseconds, for {@linkcode LatencyHistogram.chart}. */
  readonly #powers = new Float64Array(33);

  /**
   * Records one latency given in milliseconds (as `performance.now()`
   * differences are).
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * const sent = performance.now();
   * latencies.recordMs(performance.now() - sent);
   * ```
   */
  recordMs(ms: number): void {
    let us = Math.round(ms * 1000);
    us = us < 1 ? 1 : us > HIGHEST_US ? HIGHEST_US : us;
    this.#histogram.recordValue(us);
    this.#powers[31 - Math.clz32(us)]++;
  }

  /**
   * How many latencies were recorded.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * console.log(new LatencyHistogram().count); // 0
   * ```
   */
  get count(): number {
    return this.#histogram.totalCount;
  }

  /**
   * The least latency recorded, in microseconds (0 when none was).
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * latencies.recordMs(1.5);
   * console.log(latencies.minUs); // 1500
   * ```
   */
  get minUs(): number {
    return this.count === 0 ? 0 : this.#histogram.minNonZeroValue;
  }

  /**
   * The greatest latency recorded, in microseconds (0 when none was), to
   * three significant digits.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * latencies.recordMs(2);
   * console.log(latencies.maxUs); // 2000 (or within 0.1% of it)
   * ```
   */
  get maxUs(): number {
    return this.count === 0 ? 0 : this.#histogram.maxValue;
  }

  /**
   * The mean latency, in microseconds (0 when none was recorded).
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * latencies.recordMs(0.010);
   * latencies.recordMs(0.030);
   * console.log(latencies.meanUs); // 20
   * ```
   */
  get meanUs(): number {
    return this.count === 0 ? 0 : this.#histogram.mean;
  }

  /**
   * The latency at `percentile` (0 to 100), in microseconds; 0 when nothing
   * was recorded.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * for (let ms = 1; ms <= 100; ms++) latencies.recordMs(ms);
   * console.log(latencies.atPercentile(99)); // 99000 (to three significant digits)
   * ```
   */
  atPercentile(percentile: number): number {
    return this.count === 0 ? 0 : this.#histogram.getValueAtPercentile(percentile);
  }

  /**
   * HdrHistogram's percentile-distribution text (the `.hgrm` format its
   * plotters read), in milliseconds, five ticks per half-distance.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * latencies.recordMs(0.5);
   * console.log(latencies.percentileDistribution().includes("Percentile")); // true
   * ```
   */
  percentileDistribution(): string {
    return this.#histogram.outputPercentileDistribution(5, 1000);
  }

  /**
   * One bar per power of two of microseconds from the least to the most
   * latency recorded (1-2 µs, 2-4 µs, ...), `width` characters for the
   * fullest: how many latencies fell in each. Empty when nothing was
   * recorded.
   *
   * @example
   * ```ts
   * import { LatencyHistogram } from "@x/echo/bench";
   *
   * const latencies = new LatencyHistogram();
   * latencies.recordMs(0.020);
   * console.log(latencies.chart().join("\n"));
   * ```
   */
  chart(width = 40): string[] {
    const counts = this.#powers;
    let first = 0;
    while (first < counts.length && counts[first] === 0) first++;
    let last = counts.length - 1;
    while (last > first && counts[last] === 0) last--;
    if (first === counts.length) return [];
    let most = 0;
    for (let i = first; i <= last; i++) most = Math.max(most, counts[i]);
    const lines: string[] = [];
    for (let i = first; i <= last; i++) {
      const range = `${formatMicroseconds(2 ** i)} – ${formatMicroseconds(2 ** (i + 1))}`;
      const bar = "█".repeat(Math.round((counts[i] / most) * width));
      lines.push(`${range.padStart(19)} │${bar} ${counts[i]}`);
    }
    return lines;
  }
}

/**
 * `us` microseconds as a short text: µs below a millisecond, ms below a
 * second, s above.
 *
 * @example
 * ```ts
 * import { formatMicroseconds } from "@x/echo/bench";
 *
 * console.log(formatMicroseconds(1500)); // "1.50 ms"
 * ```
 */
export function formatMicroseconds(us: number): string {
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}
