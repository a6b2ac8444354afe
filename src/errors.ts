import { UnrecoverableError } from 'bullmq';

/**
 * Typed errors. Each maps to one HTTP status and a stable snake_case code in the JSON error format
 * (SPEC §3); the mapping happens in one place, the API's error middleware.
 */
export class AppError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly httpStatus: number,
    readonly details?: unknown,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
  /** When the client may try again (the answer's `Retry-After`), for 429 and 503. */
  readonly retryAfterSeconds: number | undefined;
}

export class ValidationError extends AppError {
  constructor(message: string, details?: unknown, code = 'validation_failed') {
    super(code, message, 400, details);
  }
}
export class AuthenticationError extends AppError {
  constructor(message: string, code = 'unauthenticated') {
    super(code, message, 401);
  }
}
export class ForbiddenError extends AppError {
  constructor(message: string) {
    super('forbidden', message, 403);
  }
}
export class NotFoundError extends AppError {
  constructor(what: string, id: string) {
    super('not_found', `${what} ${id} not found`, 404, { [what]: id });
  }
}
export class ConflictError extends AppError {
  constructor(message: string, details?: unknown, code = 'idempotency_conflict') {
    super(code, message, 409, details);
  }
}
/** A business rule refused the request (invalid transition, tracking mismatch, ...). */
export class TransitionError extends AppError {
  constructor(code: string, message: string, details?: unknown) {
    super(code, message, 422, details);
  }
}
/** The hub cannot take the request right now (e.g. Postgres unreachable): nothing was stored. */
export class UnavailableError extends AppError {
  constructor(message: string, options?: { cause?: unknown; retryAfterSeconds?: number; code?: string; details?: unknown }) {
    super(options?.code ?? 'service_unavailable', message, 503, options?.details, options);
  }
}

export type IntegrationErrorClass = 'retriable' | 'non_retriable';

/** A partner call that failed but may succeed if tried again (network, timeout, 5xx, 408, 429). */
export class RetriableIntegrationError extends Error {
  readonly errorClass: IntegrationErrorClass = 'retriable';
  constructor(
    readonly integration: string,
    message: string,
    readonly status: number | null,
    /** Retry-After from the partner, if it sent one. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'RetriableIntegrationError';
  }
}

/**
 * A partner call that will fail the same way again (other 4xx, an invalid response). It extends
 * BullMQ's UnrecoverableError so the queue stops retrying it: BullMQ recognises only its own class.
 */
export class NonRetriableIntegrationError extends UnrecoverableError {
  readonly errorClass: IntegrationErrorClass = 'non_retriable';
  constructor(
    readonly integration: string,
    message: string,
    readonly status: number | null,
  ) {
    super(message);
    this.name = 'NonRetriableIntegrationError';
  }
}
