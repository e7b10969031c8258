/**
 * The closed set of error codes every farcall API uses. Semantics follow gRPC's status codes,
 * which the ecosystem already knows. `docs/errors.md` lists every code; a test keeps it in sync.
 */
export const codes = [
  "canceled",
  "deadline_exceeded",
  "unavailable",
  "resource_exhausted",
  "unimplemented",
  "invalid_argument",
  "unauthenticated",
  "permission_denied",
  "internal",
  "application",
  "unknown",
] as const;

/** One of {@link codes}. Branch on this, never on messages. */
export type Code = (typeof codes)[number];

/** String-valued metadata that may cross the wire with a call, a reply or an error. */
export type Metadata = Readonly<Record<string, string>>;

/** Options accepted by the {@link FarcallError} constructor. */
export interface FarcallErrorOptions {
  /** Structured, serializable details (for `application` errors: `{ name }` of the thrown error). */
  readonly details?: Readonly<Record<string, unknown>>;
  /** Metadata carried with the error (crosses the wire). */
  readonly metadata?: Metadata;
  /** The underlying error, kept for diagnosis; never sent over the wire. */
  readonly cause?: unknown;
  /**
   * Whether any byte of the call reached the socket. `false` means the call was certainly never
   * executed and may be retried even when the method is not idempotent. Default `true` (unknown).
   */
  readonly sent?: boolean;
  /** A stable machine-readable reason for option and configuration errors (e.g. `bad_option`). */
  readonly reason?: string;
}

/**
 * The one error class farcall throws or rejects with. Everything leaving a public function or
 * crossing the wire is a `FarcallError` carrying a {@link Code}.
 */
export class FarcallError extends Error {
  override readonly name = "FarcallError";
  readonly code: Code;
  readonly details: Readonly<Record<string, unknown>>;
  readonly metadata: Metadata;
  readonly sent: boolean;
  readonly reason: string | undefined;

  constructor(code: Code, message: string, options: FarcallErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? emptyDetails;
    this.metadata = options.metadata ?? emptyMetadata;
    this.sent = options.sent ?? true;
    this.reason = options.reason;
  }

  /**
   * Normalises anything caught into a `FarcallError`. A `FarcallError` is returned as is; an
   * `AbortError` becomes `canceled`; anything else becomes `fallback` (default `unknown`) with the
   * original kept as `cause`.
   */
  static from(reason: unknown, fallback: Code = "unknown"): FarcallError {
    if (reason instanceof FarcallError) return reason;
    if (reason instanceof Error) {
      if (reason.name === "AbortError") return new FarcallError("canceled", reason.message, { cause: reason });
      if (reason.name === "TimeoutError") {
        return new FarcallError("deadline_exceeded", reason.message, { cause: reason });
      }
      return new FarcallError(fallback, reason.message, { cause: reason });
    }
    return new FarcallError(fallback, String(reason), { cause: reason });
  }

  /** A copy of this error with `sent` set, keeping everything else. */
  withSent(sent: boolean): FarcallError {
    if (this.sent === sent) return this;
    return new FarcallError(this.code, this.message, {
      details: this.details,
      metadata: this.metadata,
      cause: this.cause,
      sent,
      ...(this.reason === undefined ? {} : { reason: this.reason }),
    });
  }
}

const emptyDetails: Readonly<Record<string, unknown>> = Object.freeze({});
const emptyMetadata: Metadata = Object.freeze({});

/** Wire status byte of a code: 0 is success, codes are numbered from 1 in {@link codes} order. */
export function codeToStatus(code: Code): number {
  return codes.indexOf(code) + 1;
}

/** The code of a wire status byte; an unknown byte maps to `unknown`. */
export function statusToCode(status: number): Code {
  return codes[status - 1] ?? "unknown";
}

/** Throws a `FarcallError("invalid_argument")` with reason `bad_option` naming the option. */
export function badOption(name: string, problem: string): never {
  throw new FarcallError("invalid_argument", `option ${name}: ${problem}`, {
    reason: "bad_option",
    details: { option: name },
    sent: false,
  });
}
