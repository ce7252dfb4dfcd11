// The JetStream and KV clients are optional peer dependencies, loaded at run time by Node from
// the app's node_modules: the comments keep app bundlers (Next.js) from resolving them at build
// time, where an app on the memory broker does not have them. Only the broker loads this module;
// a `nats:` bridge needs core NATS alone (client.ts).
export const {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} = await import(/* webpackIgnore: true */ /* turbopackIgnore: true */ '@nats-io/jetstream');
export const { Kvm } = await import(/* webpackIgnore: true */ /* turbopackIgnore: true */ '@nats-io/kv');
export const { nanos, nuid } = await import(
  /* webpackIgnore: true */ /* turbopackIgnore: true */ '@nats-io/transport-node'
);
