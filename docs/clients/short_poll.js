// Reference browser client: short polling (docs/concerns.md compares all four).
//
// Usage, the same for every client in docs/clients/:
//   import { connect } from './short_poll.js';
//   const client = connect({ base: 'http://127.0.0.1:3000', onMessage: m => console.log(m) });
//   await client.publish({ text: 'hi' });   // resolves to the new message's id
//   client.close();
//
// Contract (docs/api.md): the stream is a log with ids 1, 2, 3 ... in a run called an
// epoch. A cursor "EPOCH-ID" says "seen up to ID of run EPOCH". The client keeps it,
// so a lost request or a dropped connection loses and repeats nothing; when the server
// restarted it answers "reset": true and the new run's messages from its first.

export function connect({
  base, // the server, e.g. 'http://127.0.0.1:3000'
  since = null, // a cursor 'EPOCH-ID' to resume from ('ID': of the current run); null: from now
  token = null, // the server's --publish-token, needed to publish from another origin
  intervalMs = 500, // time between two polls, or a function that returns it before each wait
  timeoutMs = 10000, // a request that takes longer is given up: the dead-peer check
  onMessage, // called once per message, in id order
  onNotice = () => {}, // {type: 'reset' | 'gap', ...}
  onState = () => {}, // 'connecting' | 'live' | 'backoff' (2nd argument: {error, delayMs}) | 'closed'
  onTrace = () => {}, // {type: 'request', url} | {type: 'response', response} | {type: 'data', text}
}) {
  let [epoch, lastId] = parseCursor(since);
  const at = () => (epoch ? `${epoch}-${lastId}` : `${lastId}`); // the cursor to send
  let closed = false;
  let failures = 0; // failures in a row, for the backoff
  let timer = null;
  let request = null; // the AbortController of the request in flight

  async function poll() {
    request = new AbortController();
    const timeout = setTimeout(() => request.abort(), timeoutMs);
    // Without a cursor, /poll answers only where "now" is: {last_id, epoch}.
    const url = `${base}/poll${epoch === null ? '' : `?since=${at()}`}`;
    try {
      onTrace({ type: 'request', url });
      const response = await fetch(url, { signal: request.signal, cache: 'no-store' });
      onTrace({ type: 'response', response });
      if (!response.ok) throw await httpError(response);
      const text = await response.text();
      onTrace({ type: 'data', text });
      const body = JSON.parse(text);
      if (closed) return; // close() came while the answer was on its way
      if (epoch === null) {
        lastId = body.last_id;
      } else {
        if (body.reset) {
          // The server restarted: forget the old run's ids, take the new run from its first.
          lastId = 0;
          onNotice({ type: 'reset', epoch: body.epoch });
        }
        if (body.missed) onNotice({ type: 'gap', missed: body.missed });
        for (const message of body.messages) {
          // Ids only grow, so an id at or below the cursor would be a repeat.
          if (message.id > lastId) {
            lastId = message.id;
            onMessage(message);
          }
        }
      }
      epoch = body.epoch;
      failures = 0;
      onState('live');
      // "more": the answer was cut short; ask again at once.
      schedule(body.more ? 0 : typeof intervalMs === 'function' ? intervalMs() : intervalMs);
    } catch (error) {
      if (closed) return;
      failures += 1;
      const delayMs = backoff(failures, error.retryAfter);
      onState('backoff', { error, delayMs });
      schedule(delayMs);
    } finally {
      clearTimeout(timeout);
    }
  }

  function schedule(ms) {
    if (!closed) timer = setTimeout(poll, ms);
  }

  onState('connecting');
  poll();
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
