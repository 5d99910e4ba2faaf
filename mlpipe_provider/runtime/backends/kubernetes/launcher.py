"""The per-node launcher for pods that run more than one rank (``process_count_per_node`` > 1).

Shipped to the pod as the source of this file (``python3 -c SOURCE RANKS_JSON``), never imported
there: the image needs nothing of mlpipe's, only a python3. So it is a constant program (values
reach it only as its one JSON argument: each rank's argv, variables and output prefix), standard
library only. It starts every rank, prefixes their output with ``[rank N]``, and stops all of them
as soon as one fails (a collective would otherwise hang), exiting with that rank's code.
"""

# ruff: noqa
import json, os, signal, subprocess, sys, threading, time

ranks = json.loads(sys.argv[1])
procs, pumps = [], []


def pump(stream, out, prefix):
    for raw in iter(stream.readline, b""):
        out.write(prefix + raw.decode("utf-8", "replace"))
        out.flush()


def stop():
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass


def on_term(signum, frame):
    stop()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, on_term)
for rank in ranks:
    env = dict(os.environ)
    env.update(rank["env"])
    p = subprocess.Popen(
        rank["argv"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    procs.append(p)
    for stream, out in ((p.stdout, sys.stdout), (p.stderr, sys.stderr)):
        t = threading.Thread(target=pump, args=(stream, out, rank["prefix"]), daemon=True)
        t.start()
        pumps.append(t)
failed = None
while True:
    codes = [p.poll() for p in procs]
    failed = next((i for i, c in enumerate(codes) if c not in (None, 0)), None)
    if failed is not None or all(c == 0 for c in codes):
        break
    time.sleep(0.1)
if failed is not None:
    stop()
for t in pumps:
    t.join(timeout=5)
if failed is None:
    sys.exit(0)
code = procs[failed].returncode
sys.stderr.write("mlpipe launcher: %sexited with code %d\n" % (ranks[failed]["prefix"], code))
sys.exit(code if code > 0 else 128 - code)
