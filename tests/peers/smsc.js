// A test SMSC built on the third-party node `smpp` package (installed by
// .ci/run into .ci/tools/node). Used by tests/smpp_interop.rs as the gate's
// upstream.
//
// Usage: node smsc.js            (listens on 127.0.0.1, a free port)
//
// Writes JSON lines to stdout:
//   {"event":"listening","port":N}
//   {"event":"connect","conn":C}            a new connection
//   {"event":"close","conn":C}
//   {"event":"pdu","conn":C,...}            every PDU it received, as node
//                                           `smpp` decoded it (see record())
//   {"event":"error","conn":C,"error":"..."}
//
// Behaviour:
//   - bind_*: accepted (system_id "nodesmsc"), unless the password is "refuse":
//     then ESME_RBINDFAIL.
//   - submit_sm / data_sm: answered with message id "n<k>"; when
//     registered_delivery asks (bit 0), a delivery receipt deliver_sm follows
//     (esm_class 0x04, receipted_message_id, message_state DELIVERED).
//   - submit_multi: answered with a message id; destinations ending in "99"
//     are refused by this SMSC (ESME_RINVDSTADR in unsuccess_sme).
//   - enquire_link, unbind: answered (unbind closes the connection).
//   - A message whose text is "SMSC:hold" is not answered; "SMSC:drop" makes
//     the SMSC drop the connection without answering.
//   - A session bound with system_type "mute-unbind" never answers unbind;
//     one bound with "drop-unbind" drops the connection on unbind instead.
'use strict';

const smpp = require('smpp');

// Keep the octets of short_message / message_payload as they were on the wire:
// node `smpp` decodes them to text (and splits a UDH off) in _filter('decode').
const origFilter = smpp.PDU.prototype._filter;
smpp.PDU.prototype._filter = function (func) {
  if (func === 'decode') {
    for (const key of ['short_message', 'message_payload']) {
      if (Buffer.isBuffer(this[key])) {
        Object.defineProperty(this, '_raw_' + key, { value: Buffer.from(this[key]), enumerable: false });
      }
    }
  }
  return origFilter.call(this, func);
};

// And the whole frame.
const origFromBuffer = smpp.PDU.prototype.fromBuffer;
smpp.PDU.prototype.fromBuffer = function (buffer) {
  Object.defineProperty(this, '_raw', { value: Buffer.from(buffer), enumerable: false });
  return origFromBuffer.call(this, buffer);
};

const tlvById = {};
for (const name of Object.keys(smpp.tlvs)) tlvById[name] = smpp.tlvs[name].id;

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function hex(v) {
  return Buffer.isBuffer(v) ? v.toString('hex') : undefined;
}

function jsonable(v) {
  if (Buffer.isBuffer(v)) return { hex: v.toString('hex') };
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(jsonable);
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) o[k] = jsonable(v[k]);
    return o;
  }
  return v;
}

function messageText(pdu) {
  const m = pdu.short_message && pdu.short_message.message !== undefined ? pdu.short_message.message
    : pdu.message_payload && pdu.message_payload.message !== undefined ? pdu.message_payload.message : undefined;
  if (m === undefined) return undefined;
  return Buffer.isBuffer(m) ? m.toString('latin1') : String(m);
}

// Everything the SMSC saw in a PDU. `tlvs` maps the tag (hex, "0x1520") to the
// value's hex for every TLV node `smpp` does not know (unknown and vendor
// tags); `known_tlvs` holds the ones it decoded, by name.
function record(conn, pdu) {
  const rec = {
    event: 'pdu',
    conn,
    command: pdu.command,
    command_id: pdu.command_id,
    status: pdu.command_status,
    seq: pdu.sequence_number,
  };
  if (pdu.system_id !== undefined) rec.system_id = pdu.system_id;
  if (pdu.password !== undefined) rec.password = pdu.password;
  if (pdu.system_type !== undefined) rec.system_type = pdu.system_type;
  if (pdu.source_addr !== undefined) rec.source_addr = pdu.source_addr;
  if (pdu.destination_addr !== undefined) rec.destination_addr = pdu.destination_addr;
  if (pdu.dest_addr_ton !== undefined) rec.dest_addr_ton = pdu.dest_addr_ton;
  if (Array.isArray(pdu.dest_address)) {
    rec.dest_address = pdu.dest_address.map((d) => d.destination_addr !== undefined ? d.destination_addr : 'DL:' + d.dl_name);
  }
  if (pdu.esm_class !== undefined) rec.esm_class = pdu.esm_class;
  if (pdu.registered_delivery !== undefined) rec.registered_delivery = pdu.registered_delivery;
  if (pdu.data_coding !== undefined) rec.data_coding = pdu.data_coding;
  if (pdu._raw_short_message) rec.short_message_hex = hex(pdu._raw_short_message);
  if (pdu._raw_message_payload) rec.message_payload_hex = hex(pdu._raw_message_payload);
  const text = messageText(pdu);
  if (text !== undefined) rec.text = text;
  if (pdu.message_id !== undefined) rec.message_id = pdu.message_id;
  rec.tlvs = {};
  rec.known_tlvs = {};
  for (const key of Object.keys(pdu)) {
    if (/^\d+$/.test(key)) {
      rec.tlvs['0x' + Number(key).toString(16).padStart(4, '0')] = hex(pdu[key]);
    } else if (key in tlvById && key !== 'short_message') {
      rec.known_tlvs[key] = jsonable(pdu[key]);
    }
  }
  if (pdu._raw) rec.raw = pdu._raw.toString('hex');
  out(rec);
}

let nextConn = 0;
let nextId = 0;

const server = smpp.createServer({}, (session) => {
  const conn = ++nextConn;
  out({ event: 'connect', conn });
  session.on('close', () => out({ event: 'close', conn }));
  session.on('error', (e) => out({ event: 'error', conn, error: String(e && e.message || e) }));

  let mode = '';
  const bind = (pdu) => {
    mode = pdu.system_type || '';
    if (pdu.password === 'refuse') {
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      return;
    }
    session.send(pdu.response({ system_id: 'nodesmsc' }));
  };

  const receipt = (pdu, id) => {
    const now = new Date();
    const stamp = now.toISOString().replace(/[-T:]/g, '').slice(2, 12);
    const text = `id:${id} sub:001 dlvr:001 submit date:${stamp} done date:${stamp} stat:DELIVRD err:000 text:`;
    session.deliver_sm({
      source_addr_ton: pdu.dest_addr_ton,
      source_addr_npi: pdu.dest_addr_npi,
      source_addr: pdu.destination_addr,
      dest_addr_ton: pdu.source_addr_ton,
      dest_addr_npi: pdu.source_addr_npi,
      destination_addr: pdu.source_addr,
      esm_class: 0x04,
      short_message: text,
      receipted_message_id: id,
      message_state: 2,
    });
  };

  session.on('pdu', (pdu) => {
    record(conn, pdu);
    const text = messageText(pdu);
    if (text === 'SMSC:hold') return;
    if (text === 'SMSC:drop') {
      session.destroy();
      return;
    }
    switch (pdu.command) {
      case 'bind_transceiver':
      case 'bind_transmitter':
      case 'bind_receiver':
        bind(pdu);
        break;
      case 'submit_sm':
      case 'data_sm': {
        const id = 'n' + (++nextId);
        session.send(pdu.response({ message_id: id }));
        if (pdu.registered_delivery & 1) receipt(pdu, id);
        break;
      }
      case 'submit_multi': {
        const id = 'n' + (++nextId);
        const unsuccess = (pdu.dest_address || [])
          .filter((d) => typeof d.destination_addr === 'string' && d.destination_addr.endsWith('99'))
          .map((d) => ({
            dest_addr_ton: d.dest_addr_ton,
            dest_addr_npi: d.dest_addr_npi,
            destination_addr: d.destination_addr,
            error_status_code: smpp.ESME_RINVDSTADR,
          }));
        session.send(pdu.response({ message_id: id, unsuccess_sme: unsuccess }));
        break;
      }
      case 'enquire_link':
        session.send(pdu.response());
        break;
      case 'unbind':
        if (mode === 'mute-unbind') break;
        if (mode === 'drop-unbind') {
          session.destroy();
          break;
        }
        session.send(pdu.response(), () => session.close());
        break;
      default:
        if (!pdu.isResponse()) session.send(pdu.response());
    }
  });
});

server.on('error', (e) => {
  out({ event: 'error', conn: 0, error: String(e && e.message || e) });
});

server.listen(0, '127.0.0.1', () => {
  out({ event: 'listening', port: server.address().port });
});

// The test owns this process: stdin closing means the test is gone.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
