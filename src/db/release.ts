import { loadConfigOrExit } from '../config.js';
import { createLogger } from '../logger.js';
import { connectDatabase } from './client.js';
import { applyMigrations } from './migrate.js';
import { seedStoreLocations } from './store-locations.js';

/** Procfile `release`: apply migrations, then seed the store locations. Safe to run any number of times. */
const config = loadConfigOrExit();
const logger = createLogger(config, 'release');
await applyMigrations(config.databaseUrl);
const handle = connectDatabase(config.databaseUrl, { max: 1 });
try {
  const count = await seedStoreLocations(handle.db);
  logger.info({ locations: count }, 'migrations applied and store locations seeded');
} finally {
  await handle.close();
}
