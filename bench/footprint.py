#!/usr/bin/env python3
"""Idle footprint of the tray app (not a test: it prints figures against the goals).

Starts the real app on its demo repository in a private headless session (Xvfb, D-Bus, dunst),
sets a 10 s poll interval, then samples for FOOTPRINT_SECONDS (default 300) per phase:
PSS of the app and all its child processes (WebKit's included) and their CPU%, first with the
window closed, then with it open (a second launch opens it), then closed again (as a window
manager closes it). Goals from the issue: closed
<= 80 MB PSS and < 1 % CPU; open <= 300 MB PSS.

Run: python3 bench/footprint.py  (builds target/release/kopia-notifier unless KOPIA_NOTIFIER_BIN
points at a binary). Needs xvfb, dbus-daemon, dunst, xdotool and libX11 (what .ci/run installs).
"""

import ctypes
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASE_SECONDS = int(os.environ.get("FOOTPRINT_SECONDS", "300"))
SAMPLE_EVERY = 5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GOALS = {"closed_pss_mb": 80, "closed_cpu_percent": 1.0, "open_pss_mb": 300}


def app_binary() -> Path:
    if os.environ.get("KOPIA_NOTIFIER_BIN"):
        return Path(os.environ["KOPIA_NOTIFIER_BIN"])
    subprocess.run(["cargo", "build", "--release", "-p", "kopia-notifier"], cwd=ROOT, check=True)
    return ROOT / "target" / "release" / "kopia-notifier"


def descendants(pid: int) -> list[int]:
    """The process and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except OSError:
        return 0


def measure(app_pid: int, label: str) -> dict:
    """Samples PSS every few seconds and CPU over the whole phase."""
    start_ticks = {p: cpu_ticks(p) for p in descendants(app_pid)}
    started = time.monotonic()
    samples = []
    while time.monotonic() - started < PHASE_SECONDS:
        time.sleep(SAMPLE_EVERY)
        pids = descendants(app_pid)
        samples.append(sum(pss_kb(p) for p in pids))
    elapsed = time.monotonic() - started
    pids = descendants(app_pid)
    used = sum(cpu_ticks(p) - start_ticks.get(p, 0) for p in pids)
    by_process = ", ".join(f"{command_name(p)} {pss_kb(p) / 1024:.1f} MB" for p in pids)
    result = {
        "phase": label,
        "processes": len(pids),
        "pss_mb_mean": sum(samples) / len(samples) / 1024,
        "pss_mb_max": max(samples) / 1024,
        "cpu_percent": 100.0 * used / CLOCK_TICKS / elapsed,
    }
    print(
        f"{label:>14}: {result['processes']} processes, PSS mean {result['pss_mb_mean']:.1f} MB"
        f" (max {result['pss_mb_max']:.1f} MB), CPU {result['cpu_percent']:.2f} %"
        f" over {elapsed:.0f} s\n{'':>16}at the end: {by_process}"
    )
    return result


def close_window(display: str, title: str) -> None:
    """Closes the window as a window manager's close button does (a WM_DELETE_WINDOW client
    message, ICCCM 4.2.8.1): the headless session has no window manager."""
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", f"^{title}$"],
                           env={"DISPLAY": display}, capture_output=True, text=True)
    windows = found.stdout.split()
    if not windows:
        sys.exit(f"no visible window titled {title!r} to close")
    xlib = ctypes.cdll.LoadLibrary("libX11.so.6")
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XInternAtom.restype = ctypes.c_ulong
    xlib.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    xlib.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long,
                                ctypes.c_void_p]
    xlib.XFlush.argtypes = [ctypes.c_void_p]
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]

    class ClientMessage(ctypes.Structure):  # XClientMessageEvent, padded to sizeof(XEvent)
        _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong),
                    ("send_event", ctypes.c_int), ("display", ctypes.c_void_p),
                    ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
                    ("format", ctypes.c_int), ("data", ctypes.c_long * 5),
                    ("pad", ctypes.c_long * 12)]

    connection = xlib.XOpenDisplay(display.encode())
    if not connection:
        sys.exit(f"cannot open X display {display}")
    event = ClientMessage(type=33, window=int(windows[0]), format=32,  # 33: ClientMessage
                          message_type=xlib.XInternAtom(connection, b"WM_PROTOCOLS", 0))
    event.data[0] = xlib.XInternAtom(connection, b"WM_DELETE_WINDOW", 0)
    xlib.XSendEvent(connection, int(windows[0]), 0, 0, ctypes.byref(event))
    xlib.XFlush(connection)
    xlib.XCloseDisplay(connection)


def set_poll_interval(data_dir: Path, seconds: int) -> None:
    db = sqlite3.connect(data_dir / "state.sqlite3")
    row = db.execute("SELECT value FROM settings WHERE key = 'settings'").fetchone()
    settings = json.loads(row[0]) if row else {}
    settings["pollIntervalSecs"] = seconds
    db.execute(
        "INSERT INTO settings (key, value) VALUES ('settings', ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (json.dumps(settings),),
    )
    db.commit()
    db.close()


def wait_for(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.2)


def main() -> None:
    for tool in ("Xvfb", "dbus-daemon", "dunst", "xdotool"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (see .ci/run)")
    app = app_binary()
    work = Path(tempfile.mkdtemp(prefix="kopia-notifier-footprint-"))
    env = dict(os.environ)
    for name, sub in [("HOME", "home"), ("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                      ("XDG_CACHE_HOME", "cache"), ("XDG_RUNTIME_DIR", "runtime")]:
        (work / sub).mkdir(mode=0o700)
        env[name] = str(work / sub)
    env.update(NO_AT_BRIDGE="1", DISPLAY=":97")
    data_dir = work / "app-data"
    processes = []

    def start(args, **kwargs):
        process = subprocess.Popen(args, env=env, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
        processes.append(process)
        return process

    try:
        start(["Xvfb", ":97", "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
        bus = subprocess.run(["dbus-daemon", "--session", "--fork", "--print-address=1",
                              "--print-pid=1"], env=env, capture_output=True, text=True, check=True)
        address, bus_pid = bus.stdout.split()
        env["DBUS_SESSION_BUS_ADDRESS"] = address
        start(["dunst"])

        first = start([str(app), "--demo", "--hidden", "--data-dir", str(data_dir)])
        wait_for(lambda: (data_dir / "state.sqlite3").exists(), "the app's state database")
        time.sleep(3)
        first.terminate()
        first.wait(timeout=20)
        set_poll_interval(data_dir, 10)

        app_process = start([str(app), "--demo", "--hidden", "--data-dir", str(data_dir)])
        time.sleep(10)  # let start-up settle
        closed = measure(app_process.pid, "window closed")
        start([str(app), "--data-dir", str(data_dir)]).wait(timeout=20)  # opens the window
        time.sleep(10)
        opened = measure(app_process.pid, "window open")
        close_window(env["DISPLAY"], "Kopia Notifier")
        time.sleep(10)
        reclosed = measure(app_process.pid, "closed again")
        print(
            f"goals: closed PSS {closed['pss_mb_max']:.1f} <= {GOALS['closed_pss_mb']} MB: "
            f"{closed['pss_mb_max'] <= GOALS['closed_pss_mb']}; closed CPU "
            f"{closed['cpu_percent']:.2f} < {GOALS['closed_cpu_percent']} %: "
            f"{closed['cpu_percent'] < GOALS['closed_cpu_percent']}; open PSS "
            f"{opened['pss_mb_max']:.1f} <= {GOALS['open_pss_mb']} MB: "
            f"{opened['pss_mb_max'] <= GOALS['open_pss_mb']}; closed again PSS "
            f"{reclosed['pss_mb_max']:.1f} <= {GOALS['closed_pss_mb']} MB: "
            f"{reclosed['pss_mb_max'] <= GOALS['closed_pss_mb']}, CPU "
            f"{reclosed['cpu_percent']:.2f} < {GOALS['closed_cpu_percent']} %: "
            f"{reclosed['cpu_percent'] < GOALS['closed_cpu_percent']}"
        )
    finally:
        for process in reversed(processes):
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if "bus_pid" in locals():
            try:
                os.kill(int(bus_pid), signal.SIGTERM)
            except ProcessLookupError:
                pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
