// The seed's contract (000): `InfoUserService`, shared by provider and consumer. In the seed it is a
// Java interface; here it is a TypeScript interface plus the definition farcall routes by.
import { defineService } from "@farcall/core";

/** One user record, as the seed's `InfoUser` bean. */
export interface InfoUser {
  readonly id: string;
  readonly name: string;
  readonly address: string;
}

/**
 * The seed's five methods. Two deviations, both for types that say what happens: the seed's
 * `getNameById` throws a NullPointerException for an unknown id and `deleteInfoUserById` returns
 * nothing; here they return `undefined` and whether a user was removed.
 */
export interface InfoUserService {
  /** Stores `user` (replacing one with the same id) and returns every stored user, as the seed. */
  insertInfoUser(user: InfoUser): InfoUser[];
  getInfoUserById(id: string): InfoUser | undefined;
  /** True when a user with `id` existed. */
  deleteInfoUserById(id: string): boolean;
  getNameById(id: string): string | undefined;
  /** Every stored user by id, as the seed's `Map<String, InfoUser>`. */
  getAllUser(): Map<string, InfoUser>;
}

/**
 * The definition farcall routes by; it shares the interface's name (one a type, one a value), so
 * `app.client(InfoUserService)` reads like the seed. Reads are idempotent, so failover may retry
 * them on another provider after a lost connection; writes are not, so they are retried only when
 * the request never left the consumer.
 */
export const InfoUserService = defineService<InfoUserService>("demo.InfoUserService", {
  version: "1.0.0",
  methods: {
    insertInfoUser: {},
    getInfoUserById: { idempotent: true },
    deleteInfoUserById: {},
    getNameById: { idempotent: true },
    getAllUser: { idempotent: true },
  },
});
