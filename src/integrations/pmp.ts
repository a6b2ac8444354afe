import { z } from 'zod';
import { NonRetriableIntegrationError } from '../errors.js';
import type { PartnerHttp, PartnerResponse } from './partner-http.js';

/** The partner-management platform (SPEC §5.2): delivery-partner assignment and the delivery lookup. One client; every call goes through PartnerHttp. */

export interface PmpAssignmentRequest {
  orderId: string;
  locationId: string;
  /** What the partner collects on delivery: the order's COD amount, 0 for a prepaid order. */
  codAmount: number;
}

/** PMP's 200 to an assignment: the delivery partner it chose. */
export const pmpAssignmentSchema = z.looseObject({
  partnerId: z.string().min(1).max(64),
  partnerName: z.string().min(1).max(200),
});
export type PmpAssignment = z.infer<typeof pmpAssignmentSchema>;

export const PMP_DELIVERY_STATES = ['ASSIGNED', 'PICKED_UP', 'IN_TRANSIT', 'OUT_FOR_DELIVERY', 'DELIVERED', 'FAILED'] as const;
export type PmpDeliveryStatus = (typeof PMP_DELIVERY_STATES)[number];

/** PMP's answer to `GET /api/deliveries/{orderId}`: where it says the order's delivery stands. */
export const pmpDeliveryStateSchema = z.looseObject({
  orderId: z.string().min(1),
  partnerId: z.string().min(1),
  status: z.enum(PMP_DELIVERY_STATES),
  occurredAt: z.iso.datetime({ offset: true }),
});
export type PmpDeliveryState = z.infer<typeof pmpDeliveryStateSchema>;

export interface PmpCallOptions {
  attempt?: number;
  /** The same on every attempt and retry of one call (see PartnerRequest.idempotencyKey). */
  idempotencyKey?: string;
}

export class PmpClient {
  constructor(private readonly http: PartnerHttp) {}

  get enabled(): boolean {
    return this.http.enabled;
  }

  /**
   * POST /api/assignments. Resolves with the partner PMP assigned; throws a classified integration
   * error otherwise, including a 200 whose body names no partner.
   */
  assign(request: PmpAssignmentRequest, options: PmpCallOptions = {}): Promise<PartnerResponse<PmpAssignment>> {
    return this.http.call({
      method: 'POST',
      path: 'api/assignments',
      operation: 'assignment',
      body: request,
      orderId: request.orderId,
      attempt: options.attempt ?? 1,
      ...(options.idempotencyKey !== undefined ? { idempotencyKey: options.idempotencyKey } : {}),
      answer: pmpAssignmentSchema,
    });
  }

  /**
   * GET /api/deliveries/{orderId}: PMP's delivery state of the order, or null when PMP knows no
   * delivery of it (404). Any other failure throws a classified integration error; a 200 whose body
   * is not a delivery state of this order throws a non-retriable one.
   */
  async delivery(orderId: string, options: PmpCallOptions = {}): Promise<PmpDeliveryState | null> {
    try {
      const { answer } = await this.http.call({
        method: 'GET',
        path: `api/deliveries/${encodeURIComponent(orderId)}`,
        operation: 'delivery-lookup',
        orderId,
        attempt: options.attempt ?? 1,
        answer: pmpDeliveryStateSchema.refine((d) => d.orderId === orderId, { message: `the delivery is of another order, not ${orderId}`, path: ['orderId'] }),
      });
      return answer;
    } catch (err) {
      if (err instanceof NonRetriableIntegrationError && err.status === 404) return null;
      throw err;
    }
  }

  health(): Promise<PartnerResponse> {
    return this.http.call({ method: 'GET', path: 'health', operation: 'health' });
  }
}
