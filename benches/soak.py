"""The driver of benches/soak.sh (run that, not this).

  soak.py data DIR      the consent data: DIR/export.csv (the registry's and the
                        gate's starting state), DIR/consented.txt, DIR/withdrawn.txt
  soak.py run DIR ...   the load, the citizens, the sampling, the checks, the table

Flatness criteria (RSS and open fds of the gate): samples from the first 10 % of
the run (at least 60 s) are warm-up (allocator arenas, connection pools and the
first snapshot write settle there) and are left out; the rest is cut in quarters.
  - memory: the anonymous part of RSS (RssAnon: heap and stacks, where a leak
    grows; the file-backed part is the binary's pages, which the kernel drops and
    reloads under memory pressure from the other jobs on a shared machine): the
    last quarter's median within 10 % (at least 1 MiB, the allocator's own
    granularity on a heap this small) of the first quarter's. A leak of one
    64-byte allocation per message at 100 msg/s grows the heap by ~23 MB an hour,
    several times the gate's whole heap with this store, so the bound catches
    any per-message leak in an hour while leaving room for allocator noise.
    VmRSS is sampled and reported too.
  - fds: the last quarter's median at most 4 above the first quarter's, and its
    maximum at most 4 above the first quarter's maximum. A sample can land while
    load runs are connected (2 client and 2 upstream sockets), so the count moves
    by up to 4 without any leak; a leak of one fd per run (720 runs an hour) or
    per change would exceed it within minutes.
"""

import argparse
import csv
import json
import os
import random
import re
import signal
import statistics as st
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

IYS, BRAND = 700001, 100001
READ_TOKEN = "soak-read-token-0123456789"
WEBHOOK_SECRET = "soak-webhook-secret-0123456789"
CONSENTED = [f"90532{1000000 + i * 37:07d}" for i in range(2000)]
WITHDRAWN = [f"90534{1000000 + i * 41:07d}" for i in range(500)]
# The numbers citizens change: in the export as ONAY, so the changes toggle
# existing records and the store's size stays put (new records make the heap
# grow with the data, ~0.4 kB a change in a changes-only run, which is not a
# leak). CHURN_NEW=1: not in the export, each first change adds a record.
CHURN = [f"90536{1000000 + i * 43:07d}" for i in range(int(os.environ.get("CHURN_POOL", "1000")))]
CHURN_NEW = os.environ.get("CHURN_NEW", "0") == "1"
PUSH_SHARE = 0.3


def data(d):
    with open(f"{d}/consented.txt", "w") as f:
        f.write("\n".join(CONSENTED) + "\n")
    with open(f"{d}/withdrawn.txt", "w") as f:
        f.write("\n".join(WITHDRAWN) + "\n")
    with open(f"{d}/export.csv", "w") as c:
        c.write("iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n")
        for n in CONSENTED:
            c.write(f"{IYS},{BRAND},+{n},BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n")
        for n in WITHDRAWN:
            c.write(f"{IYS},{BRAND},+{n},BIREYSEL,MESAJ,RET,2024-02-01 10:00:00,IYS_WEB,,\n")
        if not CHURN_NEW:
            for n in CHURN:
                c.write(f"{IYS},{BRAND},+{n},BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n")


def http(method, url, body=None, token=None, timeout=15):
    """(status, parsed JSON or text); status 0 on a transport error."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def turkey_time(t):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t + 3 * 3600))


class Registry:
    """The emulator as a citizen and a provider use it (writes are never faulted;
    the token call is, so it is retried)."""

    def __init__(self, base):
        self.base = base
        self.token = None

    def login(self):
        for _ in range(50):
            s, b = http("POST", f"{self.base}/oauth2/token",
                        {"grant_type": "password", "username": "demo", "password": "demo"})
            if s == 200:
                self.token = b["access_token"]
                return
            time.sleep(0.2)
        raise SystemExit(f"cannot get a registry token: {s} {b}")

    def call(self, method, path, body):
        if self.token is None:
            self.login()
        s, b = http(method, f"{self.base}/sps/{IYS}/brands/{BRAND}{path}", body, self.token)
        if s == 401:
            self.login()
            s, b = http(method, f"{self.base}/sps/{IYS}/brands/{BRAND}{path}", body, self.token)
        return s, b

    def status(self, number):
        s, b = self.call("POST", "/consents/status",
                         {"recipient": f"+{number}", "recipientType": "BIREYSEL", "type": "MESAJ"})
        if s == 200:
            return b["status"]
        if s == 404:
            return None
        return f"error {s}"


def proc_sample(pid):
    """(VmRSS kB, open fds, threads, RssAnon kB) of a process."""
    rss = anon = threads = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads, anon


def wait_until(what, pred, secs=60):
    end = time.time() + secs
    while time.time() < end:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def port_open(addr):
    import socket
    host, port = addr.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def metrics(admin):
    s, text = http("GET", f"{admin}/metrics")
    out = {}
    if s != 200 or not isinstance(text, str):
        return out
    for line in text.splitlines():
        m = re.match(r"^(iys_gate_[a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def dead(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def run(a):
    reg = Registry(a.emu)
    wait_until("the emulator", lambda: port_open(a.emu.removeprefix("http://")))
    wait_until("the gate's SMPP listener", lambda: port_open(a.smpp))
    wait_until("the gate's admin API", lambda: http("GET", f"{a.admin}/readyz")[0] == 200)
    reg.login()
    stop = threading.Event()
    lock = threading.Lock()
    load = {"runs": 0, "failed_runs": 0, "sent": 0, "messages": 0, "unexpected": 0,
            "statuses": {}, "withdrawn_rok": 0, "errors": []}
    # number -> "ONAY"/"RET" as the emulator holds it (the pool starts as ONAY
    # when it is in the export)
    model = {} if CHURN_NEW else {n: "ONAY" for n in CHURN}
    written = set()  # numbers the citizens changed
    last_date = {}  # number -> unix time of its last consentDate
    churn = {"writes": 0, "refused": 0, "pushes": 0, "push_failed": 0, "errors": []}
    period = 5.0

    def load_loop():
        rng_seed = 1
        while not stop.is_set():
            started = time.time()
            n = max(1, int(a.rate * period))
            for kind, count, extra in (
                ("mixed", int(n * 0.8), ["--consented-file", f"{a.dir}/consented.txt"]),
                ("withdrawn", n - int(n * 0.8),
                 ["--consented-file", f"{a.dir}/withdrawn.txt", "--consented-share", "1",
                  "--unconsented-share", "0", "--informational-share", "0"]),
            ):
                if count == 0:
                    continue
                rng_seed += 1
                p = subprocess.run(
                    [a.bin, "smpp-load", "--target", a.smpp, "--sessions", "1", "--window", "8",
                     "--messages", str(count), "--seed", str(rng_seed), "--json", *extra],
                    capture_output=True, text=True)
                with lock:
                    load["runs"] += 1
                    try:
                        r = json.loads(p.stdout)
                    except ValueError:
                        load["failed_runs"] += 1
                        load["errors"].append(f"{kind}: exit {p.returncode}: {p.stderr.strip()[-300:]}")
                        continue
                    if p.returncode != 0:
                        load["failed_runs"] += 1
                        load["errors"].append(f"{kind}: exit {p.returncode}: {p.stderr.strip()[-300:]}")
                    load["sent"] += r["sent"]
                    load["messages"] += r["messages"]
                    load["unexpected"] += r["unexpected"]
                    for k, v in r["statuses"].items():
                        load["statuses"][k] = load["statuses"].get(k, 0) + v
                    if kind == "withdrawn":
                        load["withdrawn_rok"] += r["statuses"].get("0x00000000", 0)
            stop.wait(max(0.0, period - (time.time() - started)))

    def churn_loop():
        rng = random.Random(7)
        while not stop.wait(a.change_every):
            now = time.time()
            number = rng.choice(CHURN)
            if now - last_date.get(number, 0) < 3:
                continue
            status = "RET" if model.get(number) == "ONAY" else "ONAY"
            when = max(int(now), last_date.get(number, 0) + 1)
            source = rng.choice(["HS_WEB", "IYS_WEB"])
            s, b = reg.call("POST", "/consents", {
                "consentDate": turkey_time(when), "source": source, "recipient": f"+{number}",
                "recipientType": "BIREYSEL", "status": status, "type": "MESAJ"})
            with lock:
                if s != 200:
                    churn["refused"] += 1
                    churn["errors"].append(f"{number} {status}: {s} {b}")
                    continue
                churn["writes"] += 1
                model[number] = status
                written.add(number)
                last_date[number] = when
            if rng.random() < PUSH_SHARE:
                ps, pb = http("POST", f"{a.admin}/v1/webhook", {
                    "iyscode": IYS, "brandcode": BRAND, "recipient": f"+{number}", "type": "MESAJ",
                    "source": source, "status": status, "consentdate": turkey_time(when),
                    "recipienttype": "BIREYSEL"}, WEBHOOK_SECRET)
                with lock:
                    churn["pushes"] += 1
                    if ps != 200:
                        churn["push_failed"] += 1
                        churn["errors"].append(f"push {number}: {ps} {pb}")

    threads = [threading.Thread(target=load_loop), threading.Thread(target=churn_loop)]
    for t in threads:
        t.start()
    t0 = time.time()
    samples = []
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seconds", "gate_rss_kb", "gate_fds", "gate_threads", "emulator_rss_kb",
                    "messages_answered", "changes_written", "gate_rss_anon_kb"])
        try:
            while True:
                el = time.time() - t0
                rss, fds, thr, anon = proc_sample(a.gate_pid)
                erss = proc_sample(a.emu_pid)[0]
                with lock:
                    row = [round(el, 1), rss, fds, thr, erss, load["messages"], churn["writes"], anon]
                w.writerow(row)
                f.flush()
                samples.append(row)
                if el >= a.secs:
                    break
                time.sleep(max(0.0, min(a.sample, a.secs - el)))
        finally:
            stop.set()
            for t in threads:
                t.join()
    elapsed = time.time() - t0
    failures = []

    # Every request exactly one answer.
    statuses_sum = sum(load["statuses"].values())
    rok = load["statuses"].get("0x00000000", 0)
    # The sink prints its totals every 5 s while they change (and at Ctrl-C,
    # which a background job of a script may ignore): after 6 s of quiet its
    # last line is final.
    time.sleep(6)
    os.kill(a.sink_pid, signal.SIGINT)
    end = time.time() + 10
    while not dead(a.sink_pid) and time.time() < end:
        time.sleep(0.2)
    sink_lines = [l for l in open(f"{a.dir}/sink.log") if l.startswith("sink:")]
    m = re.search(r"(\d+) submits", sink_lines[-1]) if sink_lines else None
    sink_submits = int(m.group(1)) if m else None
    if not (load["sent"] == load["messages"] == statuses_sum):
        failures.append(f"sent {load['sent']}, answered {load['messages']}, by status {statuses_sum}: not one answer each")
    if load["unexpected"]:
        failures.append(f"{load['unexpected']} unexpected PDUs")
    if load["failed_runs"]:
        failures.append(f"{load['failed_runs']} load runs failed: {load['errors'][:3]}")
    if sink_submits != rok:
        failures.append(f"the SMSC received {sink_submits} submits, the senders got {rok} ESME_ROK")
    if load["withdrawn_rok"]:
        failures.append(f"{load['withdrawn_rok']} messages to withdrawn numbers were sent on")

    # No change lost: the gate answers what the emulator holds, for every address changed.
    changed = sorted(written)
    deadline = time.time() + 180
    while True:
        mismatches = []
        for number in changed:
            want = reg.status(number)
            if want != model[number]:
                mismatches.append(f"{number}: emulator {want}, driver {model[number]}")
                continue
            s, b = http("GET", f"{a.admin}/v1/check?iys_code={IYS}&brand_code={BRAND}&channel=MESAJ"
                        f"&recipient_type=BIREYSEL&recipient={number}", token=READ_TOKEN)
            got = (b.get("decision"), b.get("reason")) if s == 200 else (s, b)
            expect = ("allow", "consent") if want == "ONAY" else ("refuse", "withdrawn")
            if got != expect:
                mismatches.append(f"{number}: emulator {want}, gate {got}")
        if not mismatches or time.time() > deadline:
            break
        time.sleep(5)
    caught_up_after = time.time() - (deadline - 180)
    if mismatches:
        failures.append(f"{len(mismatches)} of {len(changed)} changed addresses differ: {mismatches[:5]}")
    s, status = http("GET", f"{a.admin}/v1/status", token=READ_TOKEN)
    brand = next((b for b in status.get("brands", []) if b["iys_code"] == IYS and b["brand_code"] == BRAND), None) if s == 200 else None
    onay_want = len(CONSENTED) + sum(1 for v in model.values() if v == "ONAY")  # model: every pool number held
    ret_want = len(WITHDRAWN) + sum(1 for v in model.values() if v == "RET")
    counts = brand["tuples"]["MESAJ/BIREYSEL"] if brand else None
    if counts != {"onay": onay_want, "ret": ret_want}:
        failures.append(f"/v1/status MESAJ/BIREYSEL {counts}, the emulator holds onay {onay_want} ret {ret_want}")
    if churn["refused"]:
        failures.append(f"{churn['refused']} citizen changes refused by the emulator: {churn['errors'][:3]}")
    if churn["push_failed"]:
        failures.append(f"{churn['push_failed']} webhook pushes failed: {churn['errors'][:3]}")

    met = metrics(a.admin)
    os.kill(a.emu_pid, signal.SIGTERM)
    wait_until("the emulator to stop", lambda: dead(a.emu_pid), 30)
    fault_line = next((l.strip() for l in open(f"{a.dir}/emulator.log") if l.startswith("faults injected")), "faults injected: (not reported)")

    # Flatness.
    warm = max(60.0, 0.1 * a.secs)
    steady = [r for r in samples if r[0] >= warm]
    q = max(1, len(steady) // 4)
    first, last = steady[:q], steady[-q:]
    rss0, rss1 = st.median(r[1] for r in first), st.median(r[1] for r in last)
    anon0, anon1 = st.median(r[7] for r in first), st.median(r[7] for r in last)
    anon_change = (anon1 - anon0) / anon0 * 100
    anon_bound = max(0.10 * anon0, 1024)
    fd0, fd1 = st.median(r[2] for r in first), st.median(r[2] for r in last)
    fdmax0, fdmax1 = max(r[2] for r in first), max(r[2] for r in last)
    rss_change = (rss1 - rss0) / rss0 * 100
    if len(steady) < 8:
        failures.append(f"only {len(steady)} samples after warm-up: run longer or sample more often")
    if abs(anon1 - anon0) > anon_bound:
        failures.append(f"RssAnon median {anon0:.0f} kB -> {anon1:.0f} kB ({anon_change:+.1f} %), more than {anon_bound:.0f} kB")
    if fd1 > fd0 + 4 or fdmax1 > fdmax0 + 4:
        failures.append(f"open fds median {fd0} -> {fd1}, max {fdmax0} -> {fdmax1}: grew by more than 4")

    def metric(prefix):
        return {k[len(prefix):] or "total": int(v) for k, v in met.items() if k.startswith(prefix)}

    rows = [
        ("duration", f"{elapsed:.0f} s ({len(samples)} samples every {a.sample} s, warm-up {warm:.0f} s)"),
        ("SMPP load", f"{load['runs']} runs, ~{a.rate} msg/s offered; mixed: 48 % consented, 20 % withdrawn, 16 % unknown, 16 % informational"),
        ("submit_sm sent", load["sent"]),
        ("answered", f"{load['messages']} (sum by status {statuses_sum})"),
        ("answers by status", " ".join(f"{k}={v}" for k, v in sorted(load["statuses"].items()))),
        ("SMSC sink received", f"{sink_submits} (ESME_ROK answers {rok})"),
        ("gate RssAnon (kB)", f"start {samples[0][7]}, first-quarter median {anon0:.0f}, last-quarter median {anon1:.0f} ({anon_change:+.1f} %, bound ±{anon_bound:.0f}), end {samples[-1][7]}, max {max(r[7] for r in samples)}"),
        ("gate RSS (kB)", f"start {samples[0][1]}, first-quarter median {rss0:.0f}, last-quarter median {rss1:.0f} ({rss_change:+.1f} %), end {samples[-1][1]}, max {max(r[1] for r in samples)}"),
        ("gate open fds", f"start {samples[0][2]}, first-quarter median {fd0} (max {fdmax0}), last-quarter median {fd1} (max {fdmax1}), end {samples[-1][2]}"),
        ("gate threads", f"start {samples[0][3]}, end {samples[-1][3]}"),
        ("citizen changes", f"{churn['writes']} written to the emulator ({len(changed)} of {len(CHURN)} addresses, {'new to the registry' if CHURN_NEW else 'all in the export as ONAY'}), {churn['pushes']} also pushed to the webhook, {churn['refused']} refused"),
        ("changes applied (gate)", metric("iys_gate_sync_changes_applied_total")),
        ("webhook requests", metric("iys_gate_webhook_requests_total")),
        ("store check", f"{len(changed) - len(mismatches)}/{len(changed)} changed addresses answer as the emulator holds (after {caught_up_after:.0f} s); /v1/status MESAJ/BIREYSEL {counts} vs emulator onay {onay_want} ret {ret_want}"),
        ("emulator", fault_line + f" ({a.faults})"),
        ("sync errors seen (gate)", {k: v for k, v in metric("iys_gate_sync_errors_total").items() if v}),
        ("sync rounds (gate)", metric("iys_gate_sync_batches_total")),
        ("snapshot writes", metric("iys_gate_snapshot_writes_total")),
        ("samples", a.csv),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print()
    if failures:
        for f in failures:
            print(f"FAIL: {f}")
        return 1
    print("PASS: one answer per request, heap (RssAnon) and fds flat, no change lost")
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("dir")
    r = sub.add_parser("run")
    r.add_argument("dir")
    for name, typ in [("--bin", str), ("--secs", float), ("--rate", float), ("--sample", float),
                      ("--change-every", float), ("--csv", str), ("--gate-pid", int),
                      ("--emu-pid", int), ("--sink-pid", int), ("--emu", str), ("--admin", str),
                      ("--smpp", str), ("--faults", str)]:
        r.add_argument(name, type=typ, required=True)
    a = p.parse_args()
    if a.cmd == "data":
        data(a.dir)
        return 0
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
