/**
 * Shapes shared by the protection mechanisms (rate limiters, concurrency limits, circuit
 * breakers) so that the consumer's call path and the provider's server can hold any of them. Time
 * is always passed in (`now`, epoch ms, `Date.now()` scale) so tests drive them with a fake clock.
 */

/** Options of a rate limiter, by kind. Rates are per second; durations in ms. */
export type RateLimitOptions =
  | {
      /** Token bucket: `ratePerSecond` tokens added continuously, up to `burst` held. */
      readonly kind: "tokenBucket";
      readonly ratePerSecond: number;
      /** Most tokens held (the largest burst admitted at once). Default: `ratePerSecond` (one second's worth), at least 1. */
      readonly burst?: number;
    }
  | {
      /** Sliding window: at most `limit` admissions in any `windowMs` (weighted previous + current window estimate). */
      readonly kind: "slidingWindow";
      readonly limit: number;
      /** Default 1000. */
      readonly windowMs?: number;
    }
  | {
      /**
       * Leaky bucket (Sentinel's "rate limiter" behaviour): admissions leave at a uniform pace of
       * `ratePerSecond`; a request arriving early waits its turn, up to `maxQueueMs`; beyond that
       * it is rejected.
       */
      readonly kind: "leakyBucket";
      readonly ratePerSecond: number;
      /** Longest wait in ms before a request is rejected instead. Default 500. */
      readonly maxQueueMs?: number;
    };

/**
 * Admits or rejects one request at `now`. Returns the delay in ms the request must wait before it
 * runs (0: at once; only a leaky bucket returns more than 0), or -1: rejected. An admitted request
 * has been counted; a rejected one has not.
 */
export interface RateLimiter {
  readonly kind: RateLimitOptions["kind"];
  tryAcquire(now: number): number;
}

/** A cap on calls running at once. */
export interface ConcurrencyLimiter {
  readonly limit: number;
  readonly running: number;
  /** True and counted when below the limit; false otherwise (nothing counted). */
  tryAcquire(): boolean;
  /** One admitted call finished. Exactly once per successful `tryAcquire`. */
  release(): void;
}

/** Circuit breaker states (resilience4j / Sentinel). */
export type BreakerState = "closed" | "open" | "halfOpen";
