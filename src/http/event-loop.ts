/**
 * Watches for a stuck event loop: a timer that should fire every `intervalMs` records how late it
 * fired. A loop blocked for 6 s shows one sample of ~6 s lag; the largest lag of the last `windowMs`
 * is what liveness compares with its limit, so a probe that lands just after the loop recovered still
 * sees that it was stuck. (A loop blocked *while* the probe waits answers nothing at all, and the
 * probe's own timeout is the signal then.)
 */
export class EventLoopMonitor {
  private readonly samples: { at: number; lagMs: number }[] = [];
  private readonly timer: NodeJS.Timeout;
  private expected: number;

  constructor(
    private readonly intervalMs = 500,
    private readonly windowMs = 10_000,
  ) {
    this.expected = Date.now() + intervalMs;
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref(); // never keeps a process alive that would otherwise exit
  }

  private tick(): void {
    const now = Date.now();
    this.samples.push({ at: now, lagMs: Math.max(0, now - this.expected) });
    this.expected = now + this.intervalMs;
    while (this.samples.length && this.samples[0]!.at < now - this.windowMs) this.samples.shift();
  }

  /** The largest lag seen in the last window, in ms. */
  maxLagMs(): number {
    const since = Date.now() - this.windowMs;
    let max = 0;
    for (const s of this.samples) if (s.at >= since && s.lagMs > max) max = s.lagMs;
    return max;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
