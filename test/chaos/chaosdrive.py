#!/usr/bin/env python3
"""chaosdrive.py: the SMTP load of the fault runs (make chaos, test/t-24-faults).

Standard library only. Every message carries a unique token (Subject and an
X-Chaos-Token header), so that what Postfix accepted can be matched with what
reached the sink (lost mail), and one JSON line per message is written to a
results file. One SMTP connection per message (one milter connection each).

Kinds of message:
  out          our user's mail: MAIL FROM:<tuN@example.com> on the submission
               port, 2 recipients @example.org (signed by the milter)
  local        our user's mail through sendmail(1) (pickup, non_smtpd_milters):
               while the daemon is down it leaves unsigned and unrecorded
  valid        a DSN to a valid tag of tuN, quoting one of tuN's messages; sent
               only while the tag's bounces stay within the recipients signed
               with it (so that every one is legitimate)
  genuine      an untagged DSN to tuN@example.com returning the headers of one
               of our messages (Date and Message-ID included, as real MTAs
               return them): it answers mail we sent, it must never get a 5xx
  backscatter  an untagged DSN to uR@example.com for spam we never sent
  forged       a bounce to a prvs tag with a wrong hash (refused at RCPT)

Subcommands:
  prefill     one message with --rcpts recipients per tagged address (replay
              budgets); its lines are originals for later bounces
  run         the mixed load for --duration seconds
  bounceback  after the fault: genuine and valid bounces for originals sent
              before, during and after it (--marks), and one retry of every
              bounce or message that got a 4xx, as a sending MTA would retry
  report      match the results with the sink, count per kind and phase,
              check the goals; prints a JSON summary and a table row
"""
import argparse
import asyncio
import email.utils
import json
import os
import random
import re
import sys
import time

OUR = "example.com"


def rfc2822(t):
    return email.utils.formatdate(t, localtime=False, usegmt=False)


def crlf(text):
    out = []
    for ln in text.split("\n"):
        if ln.startswith("."):
            ln = "." + ln
        out.append(ln)
    while out and out[-1] == "":
        out.pop()
    return ("\r\n".join(out) + "\r\n.\r\n").encode()


def out_message(sender, rcpt, token, t):
    return (f"From: {sender}\nTo: {rcpt}\nSubject: chaos {token}\nDate: {rfc2822(t)}\n"
            f"Message-ID: <{token}@{OUR}>\nX-Chaos-Token: {token}\n\nMessage {token}.\n")


def dsn(rcpt, token, orig, now):
    """An RFC 3464 report to rcpt returning orig's headers (a dict: from,
    to, subject, date, msgid, return_path)."""
    b = f"=_{token}"
    return f"""From: Mail Delivery System <MAILER-DAEMON@mx.remote.example.net>
To: {rcpt}
Subject: Undelivered Mail Returned to Sender {token}
Date: {rfc2822(now)}
Message-ID: <dsn.{token}@mx.remote.example.net>
X-Chaos-Token: {token}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{b}"

--{b}
Content-Type: text/plain

This is the mail system at host mx.remote.example.net.
Your message could not be delivered to one or more recipients.

<{orig['to']}>: host mx.remote.example.net said: 550 5.1.1 User unknown

--{b}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.remote.example.net
Arrival-Date: {orig['date']}

Final-Recipient: rfc822; {orig['to']}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.remote.example.net
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--{b}
Content-Type: text/rfc822-headers

Return-Path: <{orig['return_path']}>
Received: from client.example.net (client.example.net [198.51.100.7])
\tby mx.remote.example.net (Postfix) with ESMTP id 4ABCDEF
\tfor <{orig['to']}>; {orig['date']}
From: {orig['from']}
To: {orig['to']}
Subject: {orig['subject']}
Date: {orig['date']}
Message-ID: <{orig['msgid']}>

--{b}--
"""


async def read_reply(reader, timeout):
    while True:
        ln = await asyncio.wait_for(reader.readline(), timeout)
        if not ln:
            raise ConnectionError("connection closed")
        ln = ln.decode("latin-1").rstrip("\r\n")
        if len(ln) < 4 or ln[3] != "-":
            return int(ln[:3]), ln[4:]


async def smtp(port, sender, rcpts, data, timeout=60):
    """One transaction. Returns (outcome, code, stage, text)."""
    stage, code, text = "connect", 0, ""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        stage = "banner"
        code, text = await read_reply(reader, timeout)
        if code != 220:
            return classify(code, stage, False), code, stage, text
        for stage, cmd in (("ehlo", "EHLO client.example.net"), ("mail", f"MAIL FROM:<{sender}>")):
            writer.write((cmd + "\r\n").encode())
            code, text = await read_reply(reader, timeout)
            if code // 100 != 2:
                return classify(code, stage, False), code, stage, text
        ok = 0
        stage = "rcpt"
        last = (0, "")
        for r in rcpts:
            writer.write(f"RCPT TO:<{r}>\r\n".encode())
            code, text = await read_reply(reader, timeout)
            if code // 100 == 2:
                ok += 1
            else:
                last = (code, text)
        if ok == 0:
            return classify(last[0], stage, False), last[0], stage, last[1]
        stage = "data"
        writer.write(b"DATA\r\n")
        code, text = await read_reply(reader, timeout)
        if code != 354:
            return classify(code, stage, False), code, stage, text
        stage = "eom"
        writer.write(data)
        code, text = await read_reply(reader, timeout)
        try:
            writer.write(b"QUIT\r\n")
            await writer.drain()
        except Exception:
            pass
        return classify(code, stage, True), code, stage, text
    except Exception as e:  # noqa: BLE001: any transport failure is an outcome
        return "error", -1, stage, f"{type(e).__name__}: {e}"[:160]
    finally:
        if writer is not None:
            writer.close()


def classify(code, stage, eom):
    if code // 100 == 2 and eom:
        return "accepted"
    if code // 100 == 4:
        return "tempfail"
    if code // 100 == 5:
        return "refused"
    return "error"


async def sendmail(cmd, sender, rcpt, data):
    """Local submission through sendmail(1): accepted when it exits 0."""
    try:
        p = await asyncio.create_subprocess_exec(*cmd.split(), "-i", "-f", sender, "--", rcpt,
                                                 stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                                                 stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(p.communicate(data), 60)
        if p.returncode == 0:
            return "accepted", 0, "sendmail", ""
        return "tempfail", p.returncode, "sendmail", err.decode("latin-1")[:160]
    except Exception as e:  # noqa: BLE001
        return "error", -1, "sendmail", f"{type(e).__name__}: {e}"[:160]


def load_tags(path):
    tags = {}
    with open(path) as f:
        for ln in f:
            if ln.strip():
                a, t = ln.split()
                tags[a] = t
    return tags


def read_results(paths):
    rows = []
    for p in paths:
        if os.path.exists(p):
            with open(p) as f:
                rows += [json.loads(ln) for ln in f if ln.strip()]
    return rows


class Driver:
    """Sends messages and keeps what later bounces need: the originals
    accepted (per sender), each tag's budget and bounces."""

    def __init__(self, args, out_path):
        self.a = args
        self.tags = load_tags(args.tags)
        self.addrs = sorted(self.tags)
        # Quiet addresses send nothing during the load: only their prefill
        # message, then one message after the fault, followed by bounces to
        # their tag up to what the prefill signed (a replay count the store
        # may have lost, issue 12's first finding).
        q = min(getattr(args, "quiet", 0), len(self.addrs) - 1)
        self.quiet = set(self.addrs[len(self.addrs) - q:]) if q > 0 else set()
        self.active = [x for x in self.addrs if x not in self.quiet]
        self.out = open(out_path, "a")
        self.rnd = random.Random(args.seed)
        self.originals = []     # accepted out/local/prefill rows
        self.bounced = set()    # tokens of originals already bounced (genuine)
        self.budget = {}        # address -> recipients signed with its tag
        self.spent = {}         # address -> valid bounces sent to its tag
        self.seq = 0

    def learn(self, rows):
        for r in rows:
            if r["kind"] in ("out", "local", "prefill") and r["outcome"] == "accepted":
                self.originals.append(r)
                if r["kind"] != "local":
                    self.budget[r["sender"]] = self.budget.get(r["sender"], 0) + len(r["rcpts"])
            if r["kind"] == "genuine" and r.get("orig"):
                self.bounced.add(r["orig"]["token"])
            if r["kind"] == "valid":
                a = r["orig"]["from"]
                self.spent[a] = self.spent.get(a, 0) + 1

    def token(self, kind):
        self.seq += 1
        return f"tok-{self.a.label}-{kind}-{self.seq}"

    def write(self, row):
        self.out.write(json.dumps(row) + "\n")
        self.out.flush()

    def orig_of(self, r):
        return {"token": r["token"], "from": r["sender"], "to": r["rcpts"][0], "subject": f"chaos {r['token']}",
                "date": r["date"], "msgid": f"{r['token']}@{OUR}",
                "return_path": self.tags.get(r["sender"], r["sender"]) if r["kind"] != "local" else r["sender"]}

    async def send(self, kind, *, sender=None, rcpts=None, orig=None, retry_of=None):
        """Builds and sends one message of kind; returns its row."""
        a = self.a
        tok = self.token(kind)
        t = time.time()
        row = {"kind": kind, "token": tok, "wall": round(t, 3), "date": rfc2822(t)}
        if kind in ("out", "local", "prefill"):
            data = crlf(out_message(sender, rcpts[0], tok, t))
            row.update(sender=sender, rcpts=rcpts)
            if kind == "local":
                res = await sendmail(a.sendmail, sender, rcpts[0], data)
            else:
                res = await smtp(a.sub_port, sender, rcpts, data)
        else:
            if kind == "backscatter":
                u = f"u{self.rnd.randrange(100000)}@{OUR}"
                orig = {"token": "", "from": u, "to": "victim@remote.example.net", "subject": "cheap pills",
                        "date": rfc2822(t - 5), "msgid": f"spam.{tok}@spambot.example.invalid", "return_path": u}
                rcpt = u
            elif kind == "forged":
                addr = self.rnd.choice(self.addrs)
                m = re.match(r"prvs=(\d)(\d{3})([0-9a-f]{6})=(.*)", self.tags[addr])
                h = m.group(3)
                while h == m.group(3):
                    h = "%06x" % self.rnd.randrange(1 << 24)
                rcpt = f"prvs={m.group(1)}{m.group(2)}{h}={m.group(4)}"
                orig = {"token": "", "from": addr, "to": "victim@remote.example.net", "subject": "x",
                        "date": rfc2822(t - 5), "msgid": f"forged.{tok}@spambot.example.invalid", "return_path": rcpt}
            elif kind == "valid":
                rcpt = self.tags[orig["from"]]
            else:  # genuine
                rcpt = orig["from"]
            data = crlf(dsn(rcpt, tok, orig, t))
            row.update(sender="", rcpts=[rcpt], orig=orig)
            res = await smtp(a.mx_port, "", [rcpt], data)
        row["outcome"], row["code"], row["stage"], row["text"] = res
        row["dur"] = round(time.time() - t, 4)
        if retry_of:
            row["retry_of"] = retry_of
        self.write(row)
        if row["outcome"] == "accepted" and kind in ("out", "local", "prefill"):
            self.originals.append(row)
            if kind != "local":
                self.budget[sender] = self.budget.get(sender, 0) + len(rcpts)
        return row

    def pick_genuine(self, pool=None, min_age=2.0):
        now = time.time()
        cands = [r for r in (pool if pool is not None else self.originals[-3000:])
                 if r["token"] not in self.bounced and now - r["wall"] >= min_age]
        if not cands:
            return None
        r = self.rnd.choice(cands)
        self.bounced.add(r["token"])
        return self.orig_of(r)

    def pick_valid(self, addr=None, pool=None):
        """An original of an address whose tag has budget left, or None."""
        src = pool if pool is not None else self.originals[-3000:]
        cands = [r for r in src if r["kind"] != "local"
                 and (r["sender"] == addr if addr else r["sender"] not in self.quiet)
                 and self.spent.get(r["sender"], 0) < self.budget.get(r["sender"], 0)]
        if not cands:
            return None
        r = self.rnd.choice(cands)
        self.spent[r["sender"]] = self.spent.get(r["sender"], 0) + 1
        return self.orig_of(r)

    async def one(self, kind):
        a = self.a
        if kind in ("out", "local"):
            s = self.rnd.choice(self.active)
            n = self.seq + 1
            return await self.send(kind, sender=s, rcpts=[f"r{n}x{i}@example.org" for i in range(a.out_rcpts)])
        if kind == "genuine":
            o = self.pick_genuine()
            if o is None:
                kind = "backscatter"
            else:
                return await self.send("genuine", orig=o)
        if kind == "valid":
            o = self.pick_valid()
            if o is None:
                kind = "backscatter"
            else:
                return await self.send("valid", orig=o)
        return await self.send(kind)


async def cmd_prefill(a):
    d = Driver(a, a.out)
    sem = asyncio.Semaphore(a.conc)

    async def one(addr):
        async with sem:
            await d.send("prefill", sender=addr, rcpts=[f"pre{i}.{addr.split('@')[0]}@example.org" for i in range(a.rcpts)])
    await asyncio.gather(*(one(x) for x in d.addrs))


async def cmd_run(a):
    d = Driver(a, a.out)
    d.learn(read_results(a.known))
    mix = []
    for part in a.mix.split(","):
        k, w = part.split("=")
        mix += [k] * int(w)
    if not a.sendmail:
        mix = [k for k in mix if k != "local"]
    end = time.time() + a.duration

    async def worker():
        while time.time() < end:
            await d.one(d.rnd.choice(mix))
    await asyncio.gather(*(worker() for _ in range(a.conc)))


def load_marks(path):
    m = {}
    with open(path) as f:
        for ln in f:
            p = ln.split()
            if len(p) >= 2:
                m[p[0]] = float(p[1])
    return m


def phase(t, marks):
    if t < marks["fault_start"]:
        return "before"
    if t <= marks["fault_end"]:
        return "during"
    return "after"


async def cmd_bounceback(a):
    """After the fault: for each phase, genuine bounces for up to --per-phase
    originals not bounced yet and valid bounces for up to --per-phase
    originals of tags with budget left (at most --per-tag each); then one
    retry of every message that got a 4xx or a transport error."""
    d = Driver(a, a.out)
    rows = read_results(a.known)
    d.learn(rows)
    marks = load_marks(a.marks)
    sem = asyncio.Semaphore(a.conc)
    jobs = []
    for ph in ("before", "during", "after"):
        pool = [r for r in d.originals if phase(r["wall"], marks) == ph]
        d.rnd.shuffle(pool)
        for _ in range(a.per_phase):
            o = d.pick_genuine(pool, min_age=0)
            if o is None:
                break
            jobs.append(("genuine", {"orig": o}))
        per_tag = {}
        for _ in range(a.per_phase):
            ok = [r for r in pool if r["kind"] != "local" and per_tag.get(r["sender"], 0) < a.per_tag]
            o = d.pick_valid(pool=ok)
            if o is None:
                break
            per_tag[o["from"]] = per_tag.get(o["from"], 0) + 1
            jobs.append(("valid", {"orig": o}))
    for r in rows:
        if r["outcome"] in ("tempfail", "error") and r["kind"] in ("out", "local", "valid", "genuine") and "retry_of" not in r:
            if r["kind"] in ("out", "local"):
                jobs.append((r["kind"], {"sender": r["sender"], "rcpts": r["rcpts"], "retry_of": r["token"]}))
            else:
                jobs.append((r["kind"], {"orig": r["orig"], "retry_of": r["token"]}))

    async def one(kind, kw):
        async with sem:
            await d.send(kind, **kw)

    async def quiet(addr):
        async with sem:
            r = await d.send("out", sender=addr, rcpts=[f"q{i}.{addr.split('@')[0]}@example.org" for i in range(a.out_rcpts)])
        if r["outcome"] != "accepted":
            return
        pre = [x for x in d.originals if x["sender"] == addr and x["kind"] == "prefill"]
        for _ in range(a.per_tag):
            o = d.pick_valid(addr=addr, pool=pre)
            if o is None:
                break
            async with sem:
                await d.send("valid", orig=o)
    await asyncio.gather(*(one(k, kw) for k, kw in jobs), *(quiet(x) for x in sorted(d.quiet)))


def sink_tokens(path):
    """token -> [(envelope sender, verdict)] of the copies that reached the
    sink; verdict is what our X-Bounce-Check header says (verdict_class)."""
    found = {}
    tokre = re.compile(r"^X-Chaos-Token: (\S+)", re.M)
    chk = re.compile(r"^X-Bounce-Check: ([^\r\n]*)", re.M)
    with open(path) as f:
        for ln in f:
            if not ln.strip():
                continue
            m = json.loads(ln)
            data = m.get("data", "")
            t = tokre.search(data)
            if t:
                h = chk.search(data)
                found.setdefault(t.group(1), []).append((m.get("from", ""), verdict_class(h.group(1) if h else None)))
    return found


def verdict_class(h):
    """Why a bounce was delivered, from its X-Bounce-Check header."""
    if h is None:
        return "unchecked"  # no verdict: the daemon was down (milter_default_action = accept)
    for k, v in (("could not record", "gap"), ("we sent the original", "evidence"), ("valid ", "valid-tag"),
                 ("store unavailable", "store-error"), ("grace", "grace")):
        if k in h:
            return v
    return h.split(" ")[0]


def cmd_report(a):
    rows = read_results(a.results)
    marks = load_marks(a.marks)
    found = sink_tokens(a.sink)
    by, why = {}, {}
    lost = []
    unsigned_out = 0
    for r in rows:
        d = by.setdefault(r["kind"], {"sent": 0, "accepted": 0, "refused": 0, "tempfail": 0, "error": 0, "lost": 0})
        d["sent"] += 1
        d[r["outcome"]] += 1
        got = found.get(r["token"])
        if r["outcome"] == "accepted" and not got:
            d["lost"] += 1
            lost.append(r["token"])
        if got and r["kind"] in ("valid", "genuine", "backscatter", "forged"):
            w = why.setdefault(r["kind"], {})
            w[got[0][1]] = w.get(got[0][1], 0) + 1
        if r["kind"] in ("out", "prefill") and got and not any(s.lower().startswith("prvs=") for s, _ in got):
            unsigned_out += 1
    tot = {k: sum(v[k] for v in by.values()) for k in ("sent", "accepted", "refused", "tempfail", "error", "lost")}
    valid_refused = [r for r in rows if r["kind"] == "valid" and r["outcome"] == "refused"]
    genuine = [r for r in rows if r["kind"] == "genuine"]
    gph = {}
    for r in genuine:
        ph = phase(email.utils.parsedate_to_datetime(r["orig"]["date"]).timestamp(), marks)
        g = gph.setdefault(ph, {"sent": 0, "accepted": 0, "refused": 0, "tempfail": 0, "error": 0})
        g["sent"] += 1
        g[r["outcome"]] += 1
    genuine_refused = [r for r in genuine if r["outcome"] == "refused"]
    retries = [r for r in rows if r.get("retry_of")]
    retry_ok = sum(1 for r in retries if r["outcome"] == "accepted")
    forged_acc = by.get("forged", {}).get("accepted", 0)
    reasons = {}
    for r in valid_refused + genuine_refused:
        m = re.search(r"\(([a-z-]+)\)\s*$", r["text"])
        k = m.group(1) if m else r["text"][:40]
        reasons[k] = reasons.get(k, 0) + 1
    goals = {
        "no accepted mail lost": tot["lost"] == 0,
        "no valid tag refused": not valid_refused,
        "no genuine bounce refused (5xx)": not genuine_refused,
        "genuine bounces of mail sent during the fault were sent": gph.get("during", {}).get("sent", 0) > 0,
        "every outbound message that reached the sink was signed": unsigned_out == 0,
        "every message retried after a 4xx was accepted": retry_ok == len(retries),
    }
    if not a.forged_may_pass:
        goals["no forged tag accepted"] = forged_acc == 0
    res = {"fault": a.name, "total": tot, "by_kind": by, "delivered_by_verdict": why,
           "genuine_by_phase_of_original": gph, "valid_refused": len(valid_refused),
           "genuine_refused": len(genuine_refused), "refusal_reasons_valid_genuine": reasons,
           "unsigned_outbound_at_sink": unsigned_out, "forged_accepted": forged_acc,
           "retried": len(retries), "retried_accepted": retry_ok,
           "fault_window_s": round(marks["fault_end"] - marks["fault_start"], 1),
           "lost_tokens": lost[:10], "goals": goals, "ok": all(goals.values())}
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)
    gp = "/".join(str(gph.get(p, {}).get("sent", 0)) for p in ("before", "during", "after"))
    bs = why.get("backscatter", {})
    bs_txt = ", ".join(f"{k} {v}" for k, v in sorted(bs.items())) or "0"
    row = (f"| {a.name} | {tot['sent']:,} | {tot['accepted']:,} | {tot['refused']:,} | "
           f"{tot['tempfail'] + tot['error']:,} | {tot['lost']} | {len(valid_refused)} | {len(genuine_refused)} | "
           f"{gp} | {retry_ok:,} of {len(retries):,} | {by.get('backscatter', {}).get('accepted', 0):,} ({bs_txt}) | {forged_acc} |")
    print(row)
    for k, v in goals.items():
        print(f"  {'ok  ' if v else 'FAIL'} {a.name}: {k}", file=sys.stderr)
    if not res["ok"]:
        for r in (valid_refused + genuine_refused)[:5]:
            print(f"  refused: {r['kind']} {r['token']} {r['code']} {r['text']}", file=sys.stderr)
        if lost:
            print(f"  lost: {lost[:10]}", file=sys.stderr)
    return 0 if res["ok"] else 1


TABLE_HEAD = ("| fault | sent | accepted | refused | tempfailed | lost | valid refused | genuine refused | "
              "genuine bounces, original sent before/during/after the fault | 4xx retried: accepted | "
              "backscatter accepted (why) | forged accepted |\n"
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sp = ap.add_subparsers(dest="cmd", required=True)
    for name in ("prefill", "run", "bounceback"):
        p = sp.add_parser(name)
        p.add_argument("--mx-port", type=int, default=0)
        p.add_argument("--sub-port", type=int, required=True)
        p.add_argument("--tags", required=True, help="address<TAB>valid tag, one a line")
        p.add_argument("--conc", type=int, default=10)
        p.add_argument("--label", required=True)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--out", required=True, help="results file (JSON lines, appended)")
        p.add_argument("--known", nargs="*", default=[], help="earlier results files (originals, budgets)")
        p.add_argument("--sendmail", default="", help="sendmail command for local mail (e.g. 'sendmail -C DIR')")
        p.add_argument("--out-rcpts", type=int, default=2)
        p.add_argument("--quiet", type=int, default=0, help="the last N addresses are quiet (see Driver)")
    sp.choices["prefill"].add_argument("--rcpts", type=int, default=50)
    sp.choices["run"].add_argument("--duration", type=float, required=True)
    sp.choices["run"].add_argument("--mix", default="out=35,local=5,valid=20,genuine=10,backscatter=20,forged=10")
    b = sp.choices["bounceback"]
    b.add_argument("--marks", required=True)
    b.add_argument("--per-phase", type=int, default=100)
    b.add_argument("--per-tag", type=int, default=10)
    r = sp.add_parser("report")
    r.add_argument("--name", required=True)
    r.add_argument("--sink", required=True)
    r.add_argument("--marks", required=True)
    r.add_argument("--json", required=True)
    r.add_argument("--forged-may-pass", action="store_true",
                   help="the daemon was down at the MX (milter_default_action = accept)")
    r.add_argument("results", nargs="+")
    sp.add_parser("table-head")
    a = ap.parse_args()
    if a.cmd == "prefill":
        asyncio.run(cmd_prefill(a))
    elif a.cmd == "run":
        asyncio.run(cmd_run(a))
    elif a.cmd == "bounceback":
        asyncio.run(cmd_bounceback(a))
    elif a.cmd == "report":
        sys.exit(cmd_report(a))
    else:
        print(TABLE_HEAD)


if __name__ == "__main__":
    main()
