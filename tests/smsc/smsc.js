// An SMSC for smsbridge's SMPP tests, built on npm's `smpp` package (an
// SMPP codec smsbridge did not write). Scripted by one JSON argument:
//   port            0 for any; "listening <port>" is printed once bound
//   tls             {key, cert}: PEM files, for smpps
//   system_id, password   the credentials it binds (0x0F / 0x0E otherwise)
//   delay_ms        how long each submit_sm waits for its answer
//   throttle        1-based submit numbers answered ESME_RTHROTTLED (0x58)
//   silent_from     from this submit number on, no submit_sm_resp at all
//   refuse_dest     a destination answered 0x0B
//   ids             "decimal" (default) or "hex": how submit_sm_resp writes ids
//   zeros           pad submit_sm_resp ids to this many digits
//   receipts        {form: "hex"|"decimal", tlv: bool, text: bool, stat, delay_ms}
//   quiet           print only "answered" events (text and epoch ms), for benches
// Prints one JSON line per event: bind, unbind, submit (with the decoded text, its
// UDH and the submits outstanding), message (a whole text, parts joined by
// their UDH), receipt_acked. Reads "drop" on stdin to cut every connection.
"use strict";
const smpp = require("smpp");
const fs = require("fs");
const readline = require("readline");

const opts = JSON.parse(process.argv[2] || "{}");
const out = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const sessions = new Set();
let submits = 0;
let outstanding = 0;
let nextId = 1;
const long = new Map();

function idText(n, form, zeros) {
  let text = form === "hex" ? n.toString(16).toUpperCase() : n.toString(10);
  while (zeros && text.length < zeros) text = "0" + text;
  return text;
}

function onSession(session) {
  sessions.add(session);
  session.on("close", () => sessions.delete(session));
  session.on("error", () => {});
  const bind = (pdu) => {
    let status = 0;
    if (opts.system_id !== undefined && pdu.system_id !== opts.system_id) status = 0x0f;
    else if (opts.password !== undefined && pdu.password !== opts.password) status = 0x0e;
    out({ event: "bind", command: pdu.command, system_id: pdu.system_id, status });
    session.send(pdu.response({ command_status: status }));
    if (status) setTimeout(() => session.close(), 50);
  };
  session.on("bind_transceiver", bind);
  session.on("bind_transmitter", bind);
  session.on("enquire_link", (pdu) => session.send(pdu.response()));
  session.on("unbind", (pdu) => {
    out({ event: "unbind" });
    session.send(pdu.response());
    session.close();
  });
  session.on("deliver_sm_resp", (pdu) => out({ event: "receipt_acked", sequence: pdu.sequence_number }));
  session.on("submit_sm", (pdu) => {
    submits += 1;
    const n = submits;
    outstanding += 1;
    if (opts.quiet) {
      setTimeout(() => {
        outstanding -= 1;
        session.send(pdu.response({ message_id: idText(nextId++, opts.ids, opts.zeros) }));
        const sm = pdu.short_message || {};
        out({ event: "answered", text: sm.message, at: Date.now() });
      }, opts.delay_ms || 0);
      return;
    }
    const sm = pdu.short_message || {};
    const udh = (sm.udh || []).map((b) => Buffer.from(b).toString("hex"));
    const text = typeof sm.message === "string" ? sm.message : Buffer.from(sm.message || []).toString("hex");
    out({
      event: "submit",
      n,
      outstanding,
      source: pdu.source_addr,
      source_ton: pdu.source_addr_ton,
      destination: pdu.destination_addr,
      dest_ton: pdu.dest_addr_ton,
      data_coding: pdu.data_coding,
      esm_class: pdu.esm_class,
      registered_delivery: pdu.registered_delivery,
      text,
      udh,
    });
    if (opts.silent_from && n >= opts.silent_from) return;
    setTimeout(() => {
      outstanding -= 1;
      if ((opts.throttle || []).includes(n)) {
        session.send(pdu.response({ command_status: 0x58 }));
        return;
      }
      if (opts.refuse_dest && pdu.destination_addr === opts.refuse_dest) {
        session.send(pdu.response({ command_status: 0x0b }));
        return;
      }
      const id = nextId++;
      session.send(pdu.response({ message_id: idText(id, opts.ids, opts.zeros) }));
      whole(pdu, text, udh);
      if (opts.receipts) receipt(session, pdu, id);
    }, opts.delay_ms || 0);
  });
}

// Joins the parts of a long message by their concatenation UDH (IEI 0x00).
function whole(pdu, text, udh) {
  const concat = udh.map((h) => Buffer.from(h, "hex")).find((b) => b[0] === 0x00);
  if (!concat) {
    out({ event: "message", destination: pdu.destination_addr, text, parts: 1 });
    return;
  }
  const [ref, total, seq] = [concat[2], concat[3], concat[4]];
  const key = pdu.destination_addr + "/" + ref;
  const parts = long.get(key) || new Array(total).fill(null);
  parts[seq - 1] = text;
  long.set(key, parts);
  if (parts.every((p) => p !== null)) {
    long.delete(key);
    out({ event: "message", destination: pdu.destination_addr, text: parts.join(""), parts: total });
  }
}

function receipt(session, pdu, id) {
  const r = opts.receipts;
  const rid = idText(id, r.form, r.zeros);
  const stat = r.stat || "DELIVRD";
  const states = { DELIVRD: 2, EXPIRED: 3, DELETED: 4, UNDELIV: 5, ACCEPTD: 6, UNKNOWN: 7, REJECTD: 8 };
  const fields = {
    source_addr: pdu.destination_addr,
    destination_addr: pdu.source_addr,
    esm_class: 0x04,
  };
  fields.short_message =
    r.text === false
      ? ""
      : `id:${rid} sub:001 dlvrd:001 submit date:2612031015 done date:2612031016 stat:${stat} err:000 text:`;
  if (r.tlv) {
    fields.receipted_message_id = rid;
    fields.message_state = states[stat];
  }
  setTimeout(() => session.deliver_sm(fields), r.delay_ms || 10);
}

const server = opts.tls
  ? smpp.createServer({ key: fs.readFileSync(opts.tls.key), cert: fs.readFileSync(opts.tls.cert) }, onSession)
  : smpp.createServer(onSession);
server.listen(opts.port || 0, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "drop") {
    for (const s of sessions) s.socket.destroy();
  }
});
process.stdin.on("end", () => process.exit(0));
