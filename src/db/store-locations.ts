import { sql } from 'drizzle-orm';
import type { Database } from './client.js';
import { locations } from './schema/index.js';

/** The 25 QC SMF store locations plus the T1 fulfillment center. Data, not code paths: seeded by `release`. */
export const STORE_LOCATIONS: ReadonlyArray<{ locationId: string; name: string; region: string }> = [
  { locationId: 'T1-FC', name: 'T1 Fulfillment Center', region: 'Central' },
  ...Array.from({ length: 25 }, (_, i) => {
    const n = i + 1;
    const regions = ['Bangkok North', 'Bangkok South', 'Bangkok East', 'Bangkok West', 'Central'];
    return {
      locationId: `STORE-${String(n).padStart(3, '0')}`,
      name: `QC SMF Store ${String(n).padStart(3, '0')}`,
      region: regions[i % regions.length]!,
    };
  }),
];

/** Idempotent: inserts missing locations and refreshes names and regions of existing ones. */
export async function seedStoreLocations(db: Database): Promise<number> {
  await db
    .insert(locations)
    .values([...STORE_LOCATIONS])
    .onConflictDoUpdate({
      target: locations.locationId,
      set: { name: sql`excluded.name`, region: sql`excluded.region` },
    });
  return STORE_LOCATIONS.length;
}
