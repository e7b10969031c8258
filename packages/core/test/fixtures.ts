import { defineService } from "../src/contract/define-service.js";

export interface User {
  id: string;
  name: string;
  age: number;
  tags: string[];
  born?: Date;
}

export interface UserService {
  get(id: string): User | undefined;
  insert(user: User): Promise<number>;
  fail(message: string): void;
  slow(ms: number): Promise<string>;
  echo<T>(value: T): T;
  notify(event: string): void;
  whoami(): string;
  /** A string of `bytes` characters: a small request with a large reply. */
  big(bytes: number): string;
}

export const Users = defineService<UserService>("test.UserService", {
  version: "1.0.0",
  methods: {
    get: { idempotent: true },
    insert: {},
    fail: {},
    slow: { idempotent: true },
    echo: { idempotent: true },
    notify: { oneway: true },
    whoami: { idempotent: true },
    big: { idempotent: true },
  },
});
