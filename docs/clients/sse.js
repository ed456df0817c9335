// Reference browser client: Server-Sent Events (WHATWG HTML §9.2; docs/concerns.md
// compares all four).
//
// Usage, the same for every client in docs/clients/:
//   import { connect } from './sse.js';
//   const client = connect({ base: 'http://127.0.0.1:3000', onMessage: m => console.log(m) });
//   await client.publish({ text: 'hi' });   // resolves to the new message's id
//   client.close();
//
// Why fetch() and not the browser's EventSource? EventSource reconnects by itself, but
// (1) it stops for good after any answer that is not a 200 text/event-stream, a 503 too
// (WHATWG HTML §9.2, "fail the connection"); (2) it hides comments, so a script cannot
// see the server's `: keep-alive` heartbeats and cannot tell a dead peer from a quiet
// stream; (3) it retries after a fixed `retry:` delay, without jitter. To keep the
// contract equal to the other three clients, this one reads the stream with fetch and
// parses the event-stream format itself (the parser below is the spec's, minus lone CR
// line endings, which pushlab never sends).
//
// Contract (docs/api.md): the stream is a log with ids 1, 2, 3 ... in a run called an
// epoch. A cursor "EPOCH-ID" says "seen up to ID of run EPOCH". The client keeps it and
// reconnects with ?since=CURSOR; when the server restarted it sends `event: reset` and
// the new run's messages from its first.

export function connect({
  base, // the server, e.g. 'http://127.0.0.1:3000'
  since = null, // a cursor 'EPOCH-ID' to resume from ('ID': of the current run); null: from now
  token = null, // the server's --publish-token, needed to publish from another origin
  heartbeatMs = 15000, // the server's --heartbeat: a keep-alive comment at least this often
  onMessage, // called once per message, in id order
  onNotice = () => {}, // {type: 'reset' | 'gap' | 'shutdown', ...}
  onState = () => {}, // 'connecting' | 'live' | 'backoff' (2nd argument: {error, delayMs}) | 'closed'
  onTrace = () => {}, // {type: 'request', url} | {type: 'response', response} | {type: 'data', text}
}) {
  let [epoch, lastId] = parseCursor(since);
  const at = () => (epoch ? `${epoch}-${lastId}` : `${lastId}`); // the cursor to send
  let closed = false;
  let failures = 0; // failures in a row, for the backoff
  let timer = null;
  let request = null; // the AbortController of the stream

  async function stream() {
    const controller = (request = new AbortController());
    // Dead-peer check: no byte for 2.5 heartbeats (a keep-alive is due every one) → abort.
    let watchdog;
    const pet = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => controller.abort(), 2.5 * heartbeatMs);
    };
    pet();
    try {
      if (epoch === null) {
        // /sse without a cursor starts from now but says nothing until the next message;
        // a short /poll without a cursor tells where now is, so a drop before the first
        // message loses nothing.
        onTrace({ type: 'request', url: `${base}/poll` });
        const response = await fetch(`${base}/poll`, { signal: controller.signal, cache: 'no-store' });
        onTrace({ type: 'response', response });
        if (!response.ok) throw await httpError(response);
        ({ epoch, last_id: lastId } = await response.json());
      }
      const url = `${base}/sse?since=${at()}`;
      onTrace({ type: 'request', url });
      const response = await fetch(url, {
        signal: controller.signal,
        headers: { Accept: 'text/event-stream' },
        cache: 'no-store',
      });
      onTrace({ type: 'response', response });
      if (!response.ok) throw await httpError(response);
      failures = 0;
      onState('live');
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      let event = {};
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pet();
        buffer += value;
        const lines = buffer.split('\n');
        buffer = lines.pop(); // the last line may be incomplete: keep it for the next read
        for (let line of lines) {
          if (line.endsWith('\r')) line = line.slice(0, -1);
          if (line === '') {
            dispatch(event); // a blank line ends an event
            event = {};
          } else if (!line.startsWith(':')) {
            // `field: value` (one space after the colon is dropped); `:` starts a comment.
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            let value = colon < 0 ? '' : line.slice(colon + 1);
            if (value.startsWith(' ')) value = value.slice(1);
            if (field === 'data') event.data = event.data === undefined ? value : `${event.data}\n${value}`;
            if (field === 'id') event.id = value;
          }
        }
      }
      throw new Error('the stream ended');
    } catch (error) {
      if (closed) return;
      failures += 1;
      const delayMs = backoff(failures, error.retryAfter);
      onState('backoff', { error, delayMs });
      timer = setTimeout(stream, delayMs);
    } finally {
      clearTimeout(watchdog);
    }
  }

  // Every `data:` is JSON: a message has a numeric id; a notice (reset, gap, shutdown)
  // has none. The `id:` line repeats the cursor, which the payload already tells, and
  // names the epoch, which a client resumed from a bare id learns from it.
  function dispatch(event) {
    if (event.data === undefined) return; // e.g. the `retry: 1000` at the start
    onTrace({ type: 'data', text: event.data });
    if (!epoch && event.id?.includes('-')) epoch = event.id.slice(0, event.id.lastIndexOf('-'));
    const payload = JSON.parse(event.data);
    if (payload.type === 'reset') {
      // The server restarted: forget the old run's ids, take the new run from its first.
      epoch = payload.epoch;
      lastId = 0;
    }
    if (typeof payload.id !== 'number') onNotice(payload);
    else if (payload.id > lastId) {
      lastId = payload.id; // ids only grow, so an id at or below the cursor is a repeat
      onMessage(payload);
    }
  }

  onState('connecting');
  stream();
  return {
    publish: (data, type) => publish(base, token, data, type),
    cursor: () => (epoch === null ? null : at()),
    close() {
      closed = true;
      clearTimeout(timer);
      request?.abort();
      onState('closed');
    },
  };
}

// Sends upstream: a separate POST. JSON needs a CORS preflight from another origin.
async function publish(base, token, data, type) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const body = JSON.stringify(type ? { type, data } : { data });
  const response = await fetch(`${base}/publish`, { method: 'POST', headers, body });
  if (!response.ok) throw await httpError(response);
  return (await response.json()).id;
}

// 'EPOCH-ID' → [epoch, id]; 'ID' → ['', id] (a bare id: the epoch is learnt from the
// first answer); null → [null, 0].
function parseCursor(cursor) {
  if (!cursor) return [null, 0];
  const dash = cursor.lastIndexOf('-');
  return [cursor.slice(0, Math.max(dash, 0)), Number(cursor.slice(dash + 1))];
}

// An error that remembers the status and Retry-After, and tells what pushlab's JSON
// error body ({"error": code, "message": text}) says. A script on another origin cannot
// read Retry-After (pushlab does not list it in Access-Control-Expose-Headers): null.
async function httpError(response) {
  const error = new Error(`HTTP ${response.status}`);
  error.status = response.status;
  error.retryAfter = Number(response.headers.get('Retry-After')) || 0;
  const body = await response.json().catch(() => ({})); // not JSON: the status alone
  if (body.error) error.message += ` ${body.error}: ${body.message}`;
  return error;
}

// Exponential backoff with full jitter: a random wait between 0 and
// min(30 s, 0.5 s × 2^failures), so clients that failed together come back spread out.
// A Retry-After (seconds) is a floor.
function backoff(failures, retryAfter = 0) {
  const ceiling = Math.min(30000, 500 * 2 ** failures);
  return Math.max(Math.random() * ceiling, retryAfter * 1000);
}
