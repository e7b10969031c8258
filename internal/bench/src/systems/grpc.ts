import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { Payload } from "../payloads.js";
import type { ClientHandle, ClientOptions, EchoCall, ServerHandle, System } from "../system.js";

/** @grpc/grpc-js unary calls with protobuf messages from proto/echo.proto (compiled to dist/src/systems/). */
const protoPath = fileURLToPath(new URL("../../../proto/echo.proto", import.meta.url));

type UnaryMethod = (
  request: Payload,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

interface EchoClient extends grpc.Client {
  EchoSmall: UnaryMethod;
  EchoLarge: UnaryMethod;
}

type EchoClientConstructor = new (address: string, credentials: grpc.ChannelCredentials) => EchoClient;

function loadEchoService(): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync(protoPath, { keepCase: true, longs: Number, enums: String });
  const bench = grpc.loadPackageDefinition(definition)["bench"] as grpc.GrpcObject;
  return bench["Echo"] as grpc.ServiceClientConstructor;
}

export const grpcSystem: System = {
  name: "grpc",

  async startServer(): Promise<ServerHandle> {
    const service = loadEchoService();
    const server = new grpc.Server();
    const echo: grpc.handleUnaryCall<Payload, Payload> = (call, callback) => callback(null, call.request);
    server.addService(service.service, { EchoSmall: echo, EchoLarge: echo });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, boundPort) =>
        error === null ? resolve(boundPort) : reject(error),
      ),
    );
    return {
      port,
      close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
    };
  },

  async createClient({ port }: ClientOptions): Promise<ClientHandle> {
    const Client = loadEchoService() as unknown as EchoClientConstructor;
    const client = new Client(`127.0.0.1:${String(port)}`, grpc.credentials.createInsecure());
    await new Promise<void>((resolve, reject) =>
      client.waitForReady(Date.now() + 5000, (error) => (error === undefined ? resolve() : reject(error))),
    );
    const unary =
      (method: UnaryMethod): EchoCall =>
      (value) =>
        new Promise((resolve, reject) => {
          method.call(client, value, (error, response) => (error === null ? resolve(response) : reject(error)));
        });
    const small = unary(client.EchoSmall);
    const large = unary(client.EchoLarge);
    return {
      callFor: (kind) => (kind === "small" ? small : large),
      close: async () => {
        client.close();
        await Promise.resolve();
      },
    };
  },
};
