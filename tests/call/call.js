/* One side of a Kiln browser call (see call.html). Query parameters:
 *   ws    WebSocket URL of this page's c2s node (ws://127.0.0.1:<http>/xmpp-websocket)
 *   user, pw, res   this side's account and resource
 *   peer  the other side's bare JID
 *   role  "caller" (sends the JMI propose, then the Jingle session-initiate)
 *         or "callee" (answers propose with proceed, then session-accept)
 *
 * Signalling: XEP-0353 propose/proceed as messages; XEP-0166 session-initiate /
 * session-accept / transport-info IQs. Mapping to Jingle is the page's own
 * minimal one: the <content/> carries an XEP-0167 <description/> with the
 * payload types read from the SDP and an XEP-0176 <transport/> (ufrag, pwd);
 * the full SDP offer/answer rides alongside in <sdp xmlns='urn:kiln:test:sdp'/>
 * (the receiver rebuilds its RTCSessionDescription from it); trickled ICE
 * candidates are mapped to XEP-0176 <candidate/> attributes in transport-info
 * and back to a=candidate lines.
 *
 * State for the driver: window.callState ("start", "online", "ready",
 * "media", or "error: ..."), window.callLog, window.videoIn().
 */
"use strict";

const NS_JINGLE = "urn:xmpp:jingle:1";
const NS_RTP = "urn:xmpp:jingle:apps:rtp:1";
const NS_ICE = "urn:xmpp:jingle:transports:ice-udp:1";
const NS_JMI = "urn:xmpp:jingle-message:0";
const NS_EXT = "urn:xmpp:extdisco:2";
const NS_SDP = "urn:kiln:test:sdp";

const P = new URLSearchParams(location.search);
const { client, xml } = window.XMPP;
const role = P.get("role");
const peerBare = P.get("peer");
window.callState = "start";
window.callLog = [];
document.getElementById("who").textContent = P.get("user") + " (" + role + ")";

function log(s) {
  window.callLog.push(s);
  document.getElementById("log").textContent += s + "\n";
}

function fail(e) {
  window.callState = "error: " + (e && e.stack ? e.stack : String(e));
  log(window.callState);
}

let iceServers = [];
let pc = null;
let peerFull = null;
let sid = null;
let mid = "0";
let remoteSet = false;
const pendingCands = [];

const xmpp = client({
  service: P.get("ws"),
  domain: "localhost",
  resource: P.get("res"),
  username: P.get("user"),
  password: P.get("pw"),
});
xmpp.on("error", fail);

/* SDP -> XEP-0167 payload types of the first video m-line. */
function payloadTypes(sdp) {
  const out = [];
  let video = false;
  for (const ln of sdp.split(/\r?\n/)) {
    if (ln.startsWith("m=")) video = ln.startsWith("m=video");
    const m = video && /^a=rtpmap:(\d+) ([^/]+)\/(\d+)/.exec(ln);
    if (m) out.push(xml("payload-type", { id: m[1], name: m[2], clockrate: m[3] }));
  }
  return out;
}

function iceAttr(sdp, name) {
  const m = new RegExp("^a=" + name + ":(.*)$", "m").exec(sdp);
  return m ? m[1].trim() : "";
}

/* RTCIceCandidate -> XEP-0176 <candidate/>. */
function candToXml(c, n) {
  const f = c.candidate.replace(/^candidate:/, "").split(" ");
  const a = {
    foundation: f[0], component: f[1], protocol: f[2].toLowerCase(),
    priority: f[3], ip: f[4], port: f[5], type: f[7],
    generation: "0", network: "0", id: sid + "-c" + n,
  };
  for (let i = 8; i + 1 < f.length; i += 2) {
    if (f[i] === "raddr") a["rel-addr"] = f[i + 1];
    if (f[i] === "rport") a["rel-port"] = f[i + 1];
    if (f[i] === "generation") a.generation = f[i + 1];
  }
  return xml("candidate", a);
}

/* XEP-0176 <candidate/> -> a=candidate line. */
function xmlToCand(x) {
  const a = x.attrs;
  let s = "candidate:" + [a.foundation, a.component, a.protocol, a.priority,
    a.ip, a.port, "typ", a.type].join(" ");
  if (a["rel-addr"]) s += " raddr " + a["rel-addr"] + " rport " + a["rel-port"];
  return s + " generation " + (a.generation || "0");
}

function jingle(action, children) {
  return xml("jingle", { xmlns: NS_JINGLE, action, sid,
    initiator: role === "caller" ? xmpp.jid.toString() : peerFull }, children);
}

async function sendJingle(el) {
  await xmpp.iqCaller.request(xml("iq", { type: "set", to: peerFull }, el), 20000);
}

async function makePc() {
  pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: "relay" });
  let n = 0;
  pc.onicecandidate = (ev) => {
    if (!ev.candidate || !ev.candidate.candidate) return;
    log("local candidate " + ev.candidate.candidate);
    const content = xml("content", { creator: "initiator", name: ev.candidate.sdpMid || mid },
      xml("transport", { xmlns: NS_ICE, ufrag: ev.candidate.usernameFragment || "" },
        candToXml(ev.candidate, n++)));
    sendJingle(jingle("transport-info", [content])).catch(fail);
  };
  pc.oniceconnectionstatechange = () => log("ice " + pc.iceConnectionState);
  pc.ontrack = (ev) => {
    log("remote track " + ev.track.kind);
    document.getElementById("remote").srcObject = ev.streams[0];
    window.callState = "media";
  };
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  document.getElementById("local").srcObject = stream;
  for (const t of stream.getTracks()) pc.addTrack(t, stream);
}

function sdpContent(sdp) {
  return [
    xml("content", { creator: "initiator", name: mid, senders: "both" },
      xml("description", { xmlns: NS_RTP, media: "video" }, payloadTypes(sdp)),
      xml("transport", { xmlns: NS_ICE, ufrag: iceAttr(sdp, "ice-ufrag"),
        pwd: iceAttr(sdp, "ice-pwd") })),
    xml("sdp", { xmlns: NS_SDP }, sdp),
  ];
}

async function remoteDescription(type, j) {
  const sdp = j.getChildText("sdp", NS_SDP);
  await pc.setRemoteDescription({ type, sdp });
  remoteSet = true;
  for (const c of pendingCands.splice(0)) await pc.addIceCandidate(c);
}

async function onJingle(from, j) {
  const action = j.attrs.action;
  log("jingle " + action + " from " + from);
  if (j.attrs.sid !== sid) throw new Error("unknown sid " + j.attrs.sid);
  if (action === "session-initiate" && role === "callee") {
    const c = j.getChild("content");
    mid = c.attrs.name;
    await makePc();
    await remoteDescription("offer", j);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await sendJingle(jingle("session-accept", sdpContent(answer.sdp)));
  } else if (action === "session-accept" && role === "caller") {
    await remoteDescription("answer", j);
  } else if (action === "transport-info") {
    for (const c of j.getChildren("content")) {
      const tr = c.getChild("transport", NS_ICE);
      for (const x of tr.getChildren("candidate")) {
        const cand = { candidate: xmlToCand(x), sdpMid: c.attrs.name,
          usernameFragment: tr.attrs.ufrag || null };
        log("remote candidate " + cand.candidate);
        if (remoteSet) await pc.addIceCandidate(cand);
        else pendingCands.push(cand);
      }
    }
  }
}

xmpp.iqCallee.set(NS_JINGLE, "jingle", (ctx) => {
  onJingle(ctx.from.toString(), ctx.element).catch(fail);
  return true;
});

xmpp.on("stanza", (st) => {
  if (!st.is("message")) return;
  const from = st.attrs.from;
  const proceed = st.getChild("proceed", NS_JMI);
  const propose = st.getChild("propose", NS_JMI);
  if (role === "callee" && propose) {
    sid = propose.attrs.id;
    peerFull = from;
    log("propose " + sid + " from " + from);
    xmpp.send(xml("message", { to: from, type: "chat" },
      xml("ringing", { xmlns: NS_JMI, id: sid }))).catch(fail);
    xmpp.send(xml("message", { to: from, type: "chat" },
      xml("proceed", { xmlns: NS_JMI, id: sid }))).catch(fail);
  } else if (role === "caller" && proceed && proceed.attrs.id === sid) {
    peerFull = from;
    log("proceed from " + from);
    (async () => {
      await makePc();
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      mid = pc.getTransceivers()[0].mid || "0";
      await sendJingle(jingle("session-initiate", sdpContent(offer.sdp)));
    })().catch(fail);
  }
});

xmpp.on("online", async (jid) => {
  try {
    log("online as " + jid);
    window.callState = "online";
    await xmpp.send(xml("presence"));
    const res = await xmpp.iqCaller.get(xml("services", { xmlns: NS_EXT }), "localhost");
    for (const s of res.getChildren("service")) {
      const a = s.attrs;
      if (a.type !== "turn") continue;
      iceServers.push({ urls: "turn:" + a.host + ":" + a.port + "?transport=" + a.transport,
        username: a.username, credential: a.password });
    }
    log("TURN from extdisco: " + JSON.stringify(iceServers.map((s) => s.urls)));
    if (iceServers.length === 0) throw new Error("no TURN service in extdisco");
    window.callState = "ready";
    if (role === "caller") {
      sid = "call-" + Math.random().toString(36).slice(2);
      await xmpp.send(xml("message", { to: peerBare, type: "chat" },
        xml("propose", { xmlns: NS_JMI, id: sid },
          xml("description", { xmlns: NS_RTP, media: "video" })),
        xml("store", { xmlns: "urn:xmpp:hints" })));
      log("propose " + sid + " sent to " + peerBare);
    }
  } catch (e) {
    fail(e);
  }
});

/* For the driver: inbound video bytes and the selected pair's candidate types. */
window.videoIn = async () => {
  if (!pc) return { bytes: 0 };
  const st = await pc.getStats();
  let bytes = 0;
  let pairId = null;
  st.forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") bytes += r.bytesReceived || 0;
    if (r.type === "transport" && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
  });
  const pair = pairId && st.get(pairId);
  const local = pair && st.get(pair.localCandidateId);
  const remote = pair && st.get(pair.remoteCandidateId);
  return { bytes, local: local ? local.candidateType : null,
    remote: remote ? remote.candidateType : null };
};

xmpp.start().catch(fail);
