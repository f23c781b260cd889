// An smsbridge adapter in JavaScript. It speaks the same provider API as the
// Rust adapter that `smsbridge adapter new` writes, and passes the same
// fixtures: POST {base_url}/v1/messages, bearer key, form body, JSON answer.
//
// Built with jco's QuickJS backend (see package.json). QuickJS has no
// TextEncoder, so bytes are converted by hand below.
import http from "smsbridge:adapter/http@0.1.2";
import config from "smsbridge:adapter/config@0.1.2";
import log from "smsbridge:adapter/log@0.1.2";

const DEFAULT_BASE = "https://api.example.com";

function setting(key) {
  const value = config.get(key);
  return value === null || value === undefined || value === "" ? null : value;
}

function require(key) {
  const value = setting(key);
  if (value === null) throw { tag: "misconfigured", val: `setting \`${key}\` is required` };
  return value;
}

// application/x-www-form-urlencoded, as the Rust SDK writes it: space is `+`,
// and only A-Z a-z 0-9 * - . _ stay as they are.
function formEncode(pairs) {
  const escape = (s) =>
    encodeURIComponent(s)
      .replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase())
      .replace(/%20/g, "+");
  return pairs.map(([k, v]) => `${escape(k)}=${escape(v)}`).join("&");
}

function utf8Encode(text) {
  // encodeURIComponent yields UTF-8 as %XX escapes; everything else is ASCII.
  const escaped = encodeURIComponent(text);
  const bytes = [];
  for (let i = 0; i < escaped.length; i++) {
    if (escaped[i] === "%") {
      bytes.push(parseInt(escaped.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(escaped.charCodeAt(i));
    }
  }
  return new Uint8Array(bytes);
}

function utf8Decode(bytes) {
  let escaped = "";
  for (const b of bytes) escaped += "%" + (b < 16 ? "0" : "") + b.toString(16);
  try {
    return decodeURIComponent(escaped);
  } catch {
    return String.fromCharCode(...bytes); // not UTF-8: keep the bytes visible
  }
}

// The contract's error for a non-2xx status, as the Rust SDK maps it.
function statusError(status, retryAfter, detail) {
  const text = detail ? `HTTP ${status}: ${detail}` : `HTTP ${status}`;
  if (status === 401 || status === 403) return { tag: "unauthorized", val: text };
  if (status === 429) return { tag: "rate-limited", val: retryAfter };
  if (status === 408 || (status >= 500 && status <= 599)) return { tag: "unavailable", val: text };
  return { tag: "rejected", val: text };
}

function transportError(e) {
  const why = e && e.payload !== undefined ? e.payload : e;
  switch (why && why.tag) {
    case "denied":
      return { tag: "misconfigured", val: `request refused: ${why.val}` };
    case "timeout":
      return { tag: "unavailable", val: "provider did not answer in time" };
    case "connect":
      return { tag: "unavailable", val: `cannot connect: ${why.val}` };
    default:
      return { tag: "unavailable", val: `bad HTTP exchange: ${why && why.val}` };
  }
}

export const sender = {
  info() {
    return {
      name: "example-js",
      version: "0.1.0",
      provider: "Example SMS (JavaScript)",
      configKeys: [
        { name: "api_key", required: true, secret: true, description: "API key, from the provider's dashboard" },
        { name: "from", required: false, secret: false, description: "Sender id or number in E.164" },
        { name: "base_url", required: false, secret: false, description: "Replaces https://api.example.com" },
      ],
      defaultHosts: ["api.example.com"],
    };
  },

  send(msg) {
    const key = require("api_key");
    const base = (setting("base_url") || DEFAULT_BASE).replace(/\/+$/, "");
    const form = [["to", msg.to], ["text", msg.body], ["reference", msg.id]];
    const from = msg.sender || setting("from");
    if (from) form.push(["from", from]);

    let resp;
    try {
      resp = http.send({
        method: "POST",
        url: `${base}/v1/messages`,
        headers: [
          ["Authorization", `Bearer ${key}`],
          ["Content-Type", "application/x-www-form-urlencoded"],
        ],
        body: utf8Encode(formEncode(form)),
      });
    } catch (e) {
      throw transportError(e);
    }

    const text = utf8Decode(resp.body);
    let answer = null;
    try {
      answer = JSON.parse(text);
    } catch {
      answer = null;
    }
    if (resp.status >= 200 && resp.status < 300) {
      if (!answer || typeof answer.id !== "string") {
        throw { tag: "unavailable", val: `HTTP ${resp.status}: answer has no \`/id\`` };
      }
      return { providerId: answer.id, status: "queued", segments: null };
    }

    const code = (answer && answer.code) || "";
    const detail = `${code}: ${(answer && answer.message) || ""}`;
    log.write("debug", `example-js refused the message: HTTP ${resp.status}`);
    if (code === "invalid_number" || code === "unreachable") throw { tag: "invalid-recipient", val: detail };
    const retry = resp.headers.find(([k]) => k.toLowerCase() === "retry-after");
    const seconds = retry && /^\d+$/.test(retry[1].trim()) ? Number(retry[1].trim()) : null;
    throw statusError(resp.status, seconds, detail);
  },
};
