export * from './locations.js';
export * from './orders.js';
export * from './events.js';
export * from './interventions.js';
export * from './partner-calls.js';
export * from './incidents.js';
export * from './order-calls.js';
export * from './tiers.js';
