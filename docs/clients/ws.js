// Reference browser client: WebSocket (RFC 6455; docs/concerns.md compares all four).
//
// Usage, the same for every client in docs/clients/:
//   import { connect } from './ws.js';
//   const client = connect({ base: 'http://127.0.0.1:3000', onMessage: m => console.log(m) });
//   await client.publish({ text: 'hi' });   // resolves to the new message's id
//   client.close();
//
// Contract (docs/api.md): the stream is a log with ids 1, 2, 3 ... in a run called an
// epoch. A cursor "EPOCH-ID" says "seen up to ID of run EPOCH". Every connection starts
// with a `hello` frame {epoch, last_id}; the client keeps the cursor and reconnects with
// ?since=CURSOR; when the server restarted it sends a `reset` frame and the new run's
// messages from its first. The browser's WebSocket does none of this by itself: no
// reconnect, no resume, no backoff.

export function connect({
  base, // the server, e.g. 'http://127.0.0.1:3000' (ws:// is derived from it)
  since = null, // a cursor 'EPOCH-ID' to resume from ('ID': of the current run); null: from now
  token = null, // the server's --publish-token, needed to publish from another origin
  heartbeatMs = 15000, // the server's --heartbeat; the client pings this often
  onMessage, // called once per message, in id order
  onNotice = () => {}, // {type: 'reset' | 'gap' | 'error', ...}
  // 'connecting' | 'live' | 'backoff' (2nd argument: {delayMs, opened, code}: the close
  // code, none when the peer went silent) | 'closed'
  onState = () => {},
  onTrace = () => {}, // {type: 'request', url} as each connection opens | {type: 'data', text}
}) {
  let [epoch, lastId] = parseCursor(since);
  const at = () => (epoch ? `${epoch}-${lastId}` : `${lastId}`); // the cursor to send
  let closed = false;
  let failures = 0; // failures in a row, for the backoff
  let timer = null;
  let socket = null;
  let pending = []; // publishes waiting for their `published` frame, oldest first

  function open() {
    const query = new URLSearchParams();
    if (epoch !== null) query.set('since', at());
    // A browser cannot set headers on a WebSocket handshake: the token goes in the URL.
    if (token) query.set('token', token);
    const url = `${base.replace(/^http/, 'ws')}/ws?${query}`;
    onTrace({ type: 'request', url });
    const ws = (socket = new WebSocket(url));
    let done = false;
    let opened = false; // a refused handshake closes before it opens
    // Dead-peer check. The server's pings are control frames the WebSocket API hides,
    // so the client sends {"type":"ping"} every heartbeat and expects some frame (a pong
    // at least) within 2.5 heartbeats.
    let watchdog;
    const pet = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(fail, 2.5 * heartbeatMs);
    };
    const pinger = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('{"type":"ping"}'), heartbeatMs);
    pet();

    ws.onmessage = (event) => {
      pet();
      onTrace({ type: 'data', text: event.data });
      const frame = JSON.parse(event.data);
      if (frame.type === 'hello') {
        if (epoch === null) lastId = frame.last_id; // "now"
        epoch ||= frame.epoch;
        failures = 0;
        onState('live');
      } else if (frame.type === 'published') {
        pending.shift()?.resolve(frame.message_id);
      } else if (frame.type === 'error' && pending.length) {
        pending.shift().reject(new Error(`${frame.error}: ${frame.message}`));
      } else if (frame.type === 'pong') {
        // only proof of life
      } else if (typeof frame.id === 'number') {
        if (frame.id > lastId) {
          lastId = frame.id; // ids only grow, so an id at or below the cursor is a repeat
          onMessage(frame);
        }
      } else {
        if (frame.type === 'reset') [epoch, lastId] = [frame.epoch, 0]; // forget the old run
        onNotice(frame);
      }
    };
    // A refused handshake (a 503, say) and a lost connection both end here; the API does
    // not tell the script the status or a Retry-After.
    ws.onopen = () => (opened = true);
    ws.onclose = fail;

    function fail(close) {
      if (done) return;
      done = true;
      clearTimeout(watchdog);
      clearInterval(pinger);
      ws.onclose = ws.onmessage = null;
      ws.close(); // a dead peer may never answer the closing handshake: do not wait for it
      // A publish sent but not acknowledged may or may not have been appended.
      for (const p of pending) p.reject(new Error('connection lost before the server answered'));
      pending = [];
      if (closed) return;
      failures += 1;
      const delayMs = backoff(failures);
      onState('backoff', { delayMs, opened, code: close?.code });
      timer = setTimeout(open, delayMs);
    }
  }

  onState('connecting');
  open();
  return {
    // Sends upstream on the same socket: a publish frame, answered by `published`.
    publish(data, type) {
      if (socket?.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected'));
      return new Promise((resolve, reject) => {
        pending.push({ resolve, reject });
        socket.send(JSON.stringify(type ? { type: 'publish', data, message_type: type } : { type: 'publish', data }));
      });
    },
    cursor: () => (epoch === null ? null : at()),
    close() {
      closed = true;
      clearTimeout(timer);
      socket?.close(1000);
      onState('closed');
    },
  };
}

// 'EPOCH-ID' → [epoch, id]; 'ID' → ['', id] (a bare id: the epoch is learnt from the
// first answer); null → [null, 0].
function parseCursor(cursor) {
  if (!cursor) return [null, 0];
  const dash = cursor.lastIndexOf('-');
  return [cursor.slice(0, Math.max(dash, 0)), Number(cursor.slice(dash + 1))];
}

// Exponential backoff with full jitter: a random wait between 0 and
// min(30 s, 0.5 s × 2^failures), so clients that failed together come back spread out.
// (The WebSocket API never shows the handshake's Retry-After.)
function backoff(failures) {
  const ceiling = Math.min(30000, 500 * 2 ** failures);
  return Math.random() * ceiling;
}
