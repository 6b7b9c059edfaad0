// experimental_generateVideo with createAlibaba({ videoBaseURL: <gateway> }): what an app using the Vercel
// AI SDK does, with only the base URL changed. Reads GATEWAY_URL, GATEWAY_KEY, IMAGE (a PNG file) and OUT
// (where the video goes); prints one JSON line about the result. Exits non-zero on any failure.
import { readFile, writeFile } from 'node:fs/promises';
import { experimental_generateVideo } from 'ai';
import { createAlibaba } from '@ai-sdk/alibaba';

const { GATEWAY_URL, GATEWAY_KEY, IMAGE, OUT } = process.env;
const alibaba = createAlibaba({ videoBaseURL: GATEWAY_URL, apiKey: GATEWAY_KEY });

// The SDK's default download refuses IP-literal URLs (the gateway runs on 127.0.0.1 here); the gateway's
// video URL also wants the client key.
async function download({ url, abortSignal }) {
  const response = await fetch(url, { headers: { Authorization: `Bearer ${GATEWAY_KEY}` }, signal: abortSignal });
  if (!response.ok) throw new Error(`download ${url}: HTTP ${response.status}`);
  return { data: new Uint8Array(await response.arrayBuffer()), mediaType: response.headers.get('content-type') ?? undefined };
}

const { video, providerMetadata } = await experimental_generateVideo({
  model: alibaba.video('wan2.6-i2v-flash'),
  prompt: { image: await readFile(IMAGE), text: 'a cat running across a sunny lawn' },
  duration: 2,
  resolution: '1280x720',
  poll: { intervalMs: 100, timeoutMs: 60000 },
  download,
});
await writeFile(OUT, video.uint8Array);
console.log(JSON.stringify({ mediaType: video.mediaType, bytes: video.uint8Array.length, alibaba: providerMetadata.alibaba }));
