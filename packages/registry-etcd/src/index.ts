/** `@farcall/registry-etcd`: work in progress. */
export {};
