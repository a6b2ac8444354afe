export * from './locations.js';
export * from './orders.js';
export * from './events.js';
export * from './interventions.js';
