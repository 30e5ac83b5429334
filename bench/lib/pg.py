"""Postgres helpers for the bench scripts (python3 stdlib only).

- psql(): run SQL through the psql client against a connection URL.
- Cluster: a private, throwaway Postgres cluster in a temp dir (initdb/postgres run as the
  `postgres` OS user when we are root, as scripts/test does), reachable on a unix socket and on
  127.0.0.1 at a free port; stop() removes every trace of it.
- cpu_seconds(): CPU time used so far by a cluster's server processes.
"""
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def psql(url, sql=None, file=None, variables=None, check=True):
    """Runs SQL (a string or a file) with psql; returns stdout (unaligned, tuples only)."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url]
    for name, value in (variables or {}).items():
        cmd += ["-v", f"{name}={value}"]
    cmd += ["-f", file] if file else ["-c", sql]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"psql failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout.strip()


def find_bindir():
    """The directory holding initdb and pg_ctl (same search order as scripts/test)."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda d: int(d.split("/")[-2]), reverse=True)
    if shutil.which("initdb"):
        candidates.append(os.path.dirname(os.path.realpath(shutil.which("initdb"))))
    for d in candidates:
        if d and os.access(os.path.join(d, "initdb"), os.X_OK) and \
                os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return d
    raise RuntimeError("PostgreSQL server binaries not found; install the postgresql package")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Settings every benchmark cluster gets; durability "off" adds DURABILITY_OFF.
BASE_SETTINGS = {"max_connections": "300", "shared_buffers": "1GB"}
DURABILITY_OFF = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class Cluster:
    def __init__(self, durability="on"):
        self.settings = dict(BASE_SETTINGS)
        if durability == "off":
            self.settings.update(DURABILITY_OFF)
        self.bindir = find_bindir()
        self.root = None
        self.port = None

    def _as_server(self, *cmd, **kw):
        """Runs a server binary, as the postgres OS user when we are root."""
        if os.geteuid() == 0:
            cmd = ("runuser", "-u", "postgres", "--") + cmd
        return subprocess.run(cmd, cwd="/", capture_output=True, text=True, **kw)

    def start(self):
        self.root = tempfile.mkdtemp(prefix="gd-bench-")
        os.chmod(self.root, 0o755)
        self.pgdata = os.path.join(self.root, "pgdata")
        os.mkdir(self.pgdata, 0o700)
        if os.geteuid() == 0:
            shutil.chown(self.pgdata, "postgres", "postgres")
            shutil.chown(self.root, "postgres", "postgres")
        for locale in ("C.UTF-8", "C"):
            init = self._as_server(os.path.join(self.bindir, "initdb"), "-D", self.pgdata,
                                   "-A", "trust", "-U", "postgres", "-E", "UTF8",
                                   f"--locale={locale}", "--no-sync", "--no-instructions")
            if init.returncode == 0:
                break
        else:
            raise RuntimeError("initdb failed:\n" + init.stdout + init.stderr)
        self.port = free_port()
        conf = dict(self.settings, listen_addresses="'127.0.0.1'", port=str(self.port),
                    unix_socket_directories=f"'{self.root}'")
        with open(os.path.join(self.pgdata, "postgresql.conf"), "a") as f:
            f.write("\n# bench/compare cluster\n")
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        logfile = os.path.join(self.root, "server.log")
        ctl = self._as_server(os.path.join(self.bindir, "pg_ctl"), "-D", self.pgdata,
                              "-l", logfile, "-w", "-t", "60", "start")
        if ctl.returncode != 0:
            tail = open(logfile).read()[-3000:] if os.path.exists(logfile) else ""
            raise RuntimeError("pg_ctl start failed:\n" + ctl.stderr + tail)

    def url(self, db="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def postmaster_pid(self):
        with open(os.path.join(self.pgdata, "postmaster.pid")) as f:
            return int(f.readline())

    def stop(self):
        """Stops the server (immediate: nothing in it is worth keeping) and removes the dir."""
        if not self.root:
            return
        if os.path.exists(os.path.join(self.pgdata, "postmaster.pid")):
            self._as_server(os.path.join(self.bindir, "pg_ctl"), "-D", self.pgdata,
                            "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None


def cpu_seconds(postmaster_pid):
    """User+system CPU of the postmaster, its live children, and its exited children (which
    the postmaster has reaped, so they are in its cutime/cstime)."""
    def stat(pid):
        with open(f"/proc/{pid}/stat") as f:
            # Fields after the ")" closing the command name; ppid is 2nd, utime 12th.
            return f.read().rsplit(")", 1)[1].split()
    ticks = 0
    main = stat(postmaster_pid)
    ticks += sum(int(x) for x in main[11:15])  # utime, stime, cutime, cstime
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = stat(entry)
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == postmaster_pid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
