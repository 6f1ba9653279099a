// Types of `pinnedNatsServer.mjs` for the suites written in TypeScript.
export declare const PINNED_NATS: Readonly<{ version: string; url: string; sha256: string }>;
export declare const MAX_PACKAGE_BYTES: number;
export declare function packageBytes(response: Response): Promise<Uint8Array>;
export declare function pinnedBinOf(root: string): string;
export declare function installNatsDeb(deb: Uint8Array, bin: string, sha256?: string): Promise<string>;
export declare function installNatsDebFile(path: string, bin: string, sha256?: string): Promise<string>;
export declare function pinnedNatsServer(root: string): Promise<string | undefined>;
