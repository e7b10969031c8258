/** `@farcall/registry-redis`: work in progress. */
export {};
