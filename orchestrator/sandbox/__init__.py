"""Confinement for code we did not write: candidate scripts (and record replays) run through here.

A `Sandbox` starts one command as a confined process tree that
- has its own mount, PID, IPC and UTS namespaces, and its own network namespace with nothing but
  an empty loopback (unless `network=true`, which jobs spanning nodes need);
- sees an allow-list of the filesystem: /usr (with the /bin, /lib, /lib64, /sbin links),
  ld.so.cache, the Python prefix and the venv, the given paths read-only, its work folder
  read-write, sized tmpfs on /tmp and /dev/shm, its own /proc, a minimal /dev, and generated
  /etc/passwd, /etc/group and /etc/hosts; GPUs by device path (`gpu_devices`, with /sys read-only);
- runs as uid 65534 with no capabilities and no_new_privs: started as root, the host's `nobody`
  (never root: a root process, even without capabilities, may write /proc/sys); otherwise the
  caller's own uid, mapped to 65534 in a user namespace;
- gets exactly the environment it is given (start from `clean_env`, not os.environ);
- is limited per process by rlimits (address space, CPU seconds, file size, open files, no core
  dumps), and as a whole by a task count (a pids cgroup where one is writable, else a watchdog),
  the size of its work folder (watchdog) and wall time; it is its own session and dies with its
  parent.

Modes, strongest first: bwrap (bubblewrap), userns (util-linux unshare and pivot_root), off (no
confinement, the limits only; never chosen by `auto`, only by name). `probe()` says which work
here and why the others do not.

What comes out is untrusted too: `read_output` opens a result file only if it is a regular file
inside the work folder; `bounded_lines` reads a log with a line length and a total size cap.
"""
from __future__ import annotations

import errno
import functools
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from orchestrator.config import ConfigError

MODES = ("bwrap", "userns")  # strongest first; "off" is never chosen by auto
SANDBOX_UID = SANDBOX_GID = 65534  # nobody / nogroup
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install -y bubblewrap)"
WATCH_INTERVAL_S = 0.1  # how often the watchdog looks at the task count and the work folder
HOSTNAME = "sandbox"


@dataclass
class SandboxConfig:
    """`sandbox.*`. Sizes in bytes, times in seconds; 0 turns a limit off."""

    mode: str = "auto"  # auto | bwrap | userns | off
    wall_seconds: float = 14400.0  # the whole run
    cpu_seconds: int = 57600  # per process (RLIMIT_CPU; SIGXCPU): four busy threads for the wall limit
    address_space_bytes: int = 4 << 30  # per process (RLIMIT_AS); not applied with gpu_devices
    file_size_bytes: int = 4 << 30  # largest file a process may write (RLIMIT_FSIZE)
    open_files: int = 4096  # per process (RLIMIT_NOFILE)
    max_processes: int = 4096  # tasks of the whole run, threads included (as the pids cgroup counts)
    disk_bytes: int = 10 << 30  # the work folder
    tmp_bytes: int = 1 << 30  # each of /tmp and /dev/shm (tmpfs: memory)
    log_line_bytes: int = 64 << 10  # longer output lines are cut
    log_total_bytes: int = 64 << 20  # more output than this stops the run (log_flood)
    network: bool = False  # share the host's network (jobs spanning nodes); else an empty loopback
    ro_paths: list[str] = field(default_factory=list)  # more read-only paths, mounted where they are
    gpu_devices: list[str] = field(default_factory=list)  # e.g. /dev/nvidia0, /dev/nvidiactl, /dev/nvidia-uvm
    runs_dir: str = ""  # where `scalerun sandbox exec` makes run folders ("": the system temp dir)


_LIMITS = ("wall_seconds", "cpu_seconds", "address_space_bytes", "file_size_bytes", "open_files",
           "max_processes", "disk_bytes", "tmp_bytes", "log_line_bytes", "log_total_bytes")


def check_config(config: SandboxConfig) -> None:
    """Raise ConfigError (one line naming the key) for a bad `sandbox.*` value."""
    if config.mode not in ("auto", *MODES, "off"):
        raise ConfigError("sandbox.mode", config.mode, "allowed: auto, bwrap, userns, off")
    for name in _LIMITS:
        if getattr(config, name) < 0:
            raise ConfigError(f"sandbox.{name}", getattr(config, name), "must be >= 0 (0: no limit)")
    if config.log_line_bytes == 0 or config.log_total_bytes == 0:
        raise ConfigError("sandbox.log_line_bytes", 0, "log caps cannot be turned off")
    for path in [*config.ro_paths, *config.gpu_devices]:
        if not os.path.isabs(path):
            raise ConfigError("sandbox.ro_paths", path, "paths must be absolute")


def clean_env(workdir) -> dict[str, str]:
    """The environment a confined job starts from: nothing of the host's (no API keys, no cloud
    credentials, no RAY_ADDRESS) but a PATH with the venv first, HOME (its work folder), LANG, TMPDIR."""
    return {"PATH": f"{sys.prefix}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8",
            "TMPDIR": "/tmp"}


# ---- modes ----

def _as_root() -> bool:
    return os.geteuid() == 0


# The userns mode's setup, run by `sh -c` as root of the new namespaces: mount the allow-list on a
# tmpfs, pivot into it and unmount the host's tree, then run the job (its arguments after --) as
# pid 2, so that it gets signals, and pass on its exit status (128 + N when killed by signal N,
# as bwrap does).
_USERNS_SETUP = r"""
set -eu
umask 022
job_path=$PATH
PATH=/usr/sbin:/usr/bin:/sbin:/bin
root=$1 net=$2 workdir=$3
shift 3
mount -t tmpfs -o mode=0755 sandbox-root "$root"
mkdir "$root/proc" "$root/dev" "$root/.old"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
for d in null zero full random urandom; do : > "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"; ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
while [ "$1" != -- ]; do
  kind=$1 src=$2 dst=$3
  shift 3
  case $kind in
    link) mkdir -p "$root${dst%/*}"; ln -s "$src" "$root$dst" ;;
    tmpfs) mkdir -p "$root$dst"; mount -t tmpfs -o "mode=1777,nosuid,nodev${src:+,size=$src}" sandbox-tmp "$root$dst" ;;
    *) if [ -d "$src" ]; then mkdir -p "$root$dst"; else mkdir -p "$root${dst%/*}"; : > "$root$dst"; fi
       mount --bind "$src" "$root$dst"
       case $kind in
         ro) mount -o remount,bind,ro,nosuid,nodev "$root$dst" ;;
         rw) mount -o remount,bind,nosuid,nodev "$root$dst" ;;
       esac ;;
  esac
done
shift
if [ "$net" = 0 ]; then ip link set lo up; echo sandbox > /proc/sys/kernel/hostname; fi
cd "$root"
pivot_root . .old
umount -l /.old
rmdir /.old
mount -o remount,ro /
cd "$workdir"
PATH=$job_path
unset OLDPWD
set +e
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
wait "$child"; rc=$?
while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
exit "$rc"
"""


def _tools(mode: str) -> list[str]:
    if mode == "bwrap":
        return ["bwrap", "setpriv"] if _as_root() else ["bwrap"]
    return ["setpriv", "unshare", "pivot_root", "mount", "umount", "ip"]


_TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _tool(name: str) -> str:
    return shutil.which(name, path=_TOOL_PATH) or name


@functools.lru_cache(maxsize=None)
def probe() -> dict[str, str]:
    """Each mode -> "ok", or why it does not work on this machine (found by trying it)."""
    found = {}
    for mode in MODES:
        missing = [t for t in _tools(mode) if shutil.which(t, path=_TOOL_PATH) is None]
        if missing:
            found[mode] = f"not found: {', '.join(missing)}" + (f" ({INSTALL_HINT})" if "bwrap" in missing else "")
            continue
        with tempfile.TemporaryDirectory(prefix="scalerun-probe-") as workdir:
            try:
                job = _start(mode, SandboxConfig(), ["true"], clean_env(workdir), Path(workdir), (),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            except OSError as e:
                found[mode] = f"cannot start: {e}"
                continue
            try:
                _, err = job.proc.communicate(timeout=30)
                why = (err.decode(errors="replace").strip().splitlines() or [f"exit status {job.proc.returncode}"])[-1]
                found[mode] = "ok" if job.proc.returncode == 0 else f"fails: {why}"
            except subprocess.TimeoutExpired:
                job.proc.kill()
                job.proc.wait()
                found[mode] = "fails: a trial run did not finish in 30 s"
            finally:
                job.close()
    found["off"] = "ok (no confinement)"
    return found


def resolve_mode(mode: str) -> str:
    """The mode to run with: `auto` is the strongest that works here. Raises ConfigError (one line,
    saying how to install bubblewrap) when the mode asked for, or every mode for auto, does not work."""
    if mode == "off":
        return mode
    found = probe()
    if mode == "auto":
        for m in MODES:
            if found[m] == "ok":
                return m
        reasons = "; ".join(f"{m}: {found[m]}" for m in MODES)
        raise ConfigError("sandbox.mode", mode, f"no sandbox works on this machine ({reasons}): {INSTALL_HINT}, "
                                                "or set sandbox.mode=off to run unconfined")
    if found.get(mode) != "ok":
        raise ConfigError("sandbox.mode", mode, f"{found.get(mode, 'unknown mode')}; {INSTALL_HINT}")
    return mode


class Sandbox:
    """A configured sandbox; `start` runs one command in it. Raises ConfigError for a bad config or
    a mode that does not work here."""

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config or SandboxConfig()
        check_config(self.config)
        self.mode = resolve_mode(self.config.mode)

    def start(self, cmd: list[str], env: dict[str, str], workdir, ro_paths=(), **popen_kwargs) -> Confined:
        """Run `cmd` with exactly `env`, in `workdir` (read-write; it must exist), with `ro_paths`
        (and the config's) read-only. popen_kwargs go to subprocess.Popen (stdout, stderr, stdin)."""
        return _start(self.mode, self.config, cmd, env, Path(workdir).resolve(), ro_paths, **popen_kwargs)


# ---- one confined run ----

def _start(mode, config, cmd, env, workdir: Path, ro_paths, **popen_kwargs) -> Confined:
    if not workdir.is_dir():
        raise FileNotFoundError(f"sandbox work folder {workdir} does not exist")
    private = Path(tempfile.mkdtemp(prefix="scalerun-sandbox-"))  # generated /etc files, userns root
    cgroup = None
    try:
        if mode == "off":
            command = list(cmd)
        else:
            mounts = _mounts(config, workdir, [*config.ro_paths, *map(str, ro_paths)], private)
            if _as_root():
                _chown_tree(workdir, SANDBOX_UID, SANDBOX_GID)
            if mode == "bwrap":
                command = _bwrap_command(config, mounts, workdir, _drop(mode) + list(cmd))
            else:
                command = _userns_command(config, mounts, workdir, private / "root", _drop(mode) + list(cmd))
        cgroup = _make_pids_cgroup(config.max_processes) if config.max_processes else None
        proc = subprocess.Popen(command, env=env, cwd=workdir, start_new_session=True,
                                preexec_fn=functools.partial(_enter_limits, _rlimits(config), cgroup), **popen_kwargs)
    except BaseException:
        _remove_cgroup(cgroup)
        shutil.rmtree(private, ignore_errors=True)
        raise
    return Confined(mode, config, proc, workdir, private, cgroup)


def _drop(mode: str) -> list[str]:
    """The command prefix that makes the job uid 65534 without capabilities once the namespaces are
    set up. As root: setpriv (bwrap keeps it the three capabilities it needs) makes it the host's
    nobody. Otherwise the job keeps the caller's uid on the host: bwrap maps it to 65534 itself, the
    userns mode in a nested user namespace, which has no power over the mounts of the outer one."""
    if _as_root():
        return [_tool("setpriv"), f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    if mode == "userns":
        return [_tool("unshare"), "--user", f"--map-user={SANDBOX_UID}", f"--map-group={SANDBOX_GID}", "--"]
    return []


def _mounts(config, workdir: Path, ro_paths, private: Path) -> list[tuple[str, str, str]]:
    """(kind, source, destination) with kind ro, rw, dev, tmpfs (source: size) or link (source:
    target), parents before children."""
    mounts = [("tmpfs", str(config.tmp_bytes or ""), "/tmp"), ("tmpfs", str(config.tmp_bytes or ""), "/dev/shm"),
              ("ro", "/usr", "/usr")]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):  # links into /usr on merged-/usr systems
        if os.path.islink(top):
            mounts.append(("link", os.readlink(top), top))
        elif os.path.isdir(top):
            mounts.append(("ro", top, top))
    etc = {"passwd": f"sandbox:x:{SANDBOX_UID}:{SANDBOX_GID}:sandbox:{workdir}:/bin/sh\n",
           "group": f"sandbox:x:{SANDBOX_GID}:\n"}
    if config.network:
        mounts += [("ro", p, p) for p in ("/etc/hosts", "/etc/resolv.conf") if os.path.exists(p)]
    else:
        etc["hosts"] = f"127.0.0.1 localhost {HOSTNAME}\n::1 localhost {HOSTNAME}\n"
    for name, text in etc.items():
        (private / name).write_text(text)
        os.chmod(private / name, 0o644)
        mounts.append(("ro", str(private / name), f"/etc/{name}"))
    ro = [p for p in ("/etc/ld.so.cache",) if os.path.exists(p)] + [sys.base_prefix, sys.prefix, *ro_paths]
    if config.gpu_devices:
        ro.append("/sys")  # what CUDA and NCCL read about the devices and their topology
    for path in dict.fromkeys(os.path.abspath(p) for p in ro):
        if not os.path.exists(path):
            raise FileNotFoundError(f"sandbox read-only path {path} does not exist")
        if not any(path == d or path.startswith(d.rstrip("/") + "/") for k, _, d in mounts if k == "ro"):
            mounts.append(("ro", path, path))
    mounts += [("dev", d, d) for d in config.gpu_devices]
    mounts.append(("rw", str(workdir), str(workdir)))
    return sorted(mounts, key=lambda m: len(Path(m[2]).parts))  # stable: same depth keeps its order


def _bwrap_command(config, mounts, workdir: Path, cmd: list[str]) -> list[str]:
    args = [_tool("bwrap"), "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try"]
    if not config.network:
        args += ["--unshare-net", "--hostname", HOSTNAME]
    if _as_root():
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    else:
        args += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--disable-userns",
                 "--cap-drop", "ALL"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    made, binds = {"/", "/proc", "/dev"}, []
    for kind, src, dst in mounts:
        # bwrap makes missing parents 0700 when run as root: make them 0755, or uid 65534 cannot pass
        for parent in list(Path(dst).parents)[::-1][1:]:
            p = str(parent)
            if p not in made and not any(p == b or p.startswith(b + "/") for b in binds):
                args += ["--perms", "0755", "--dir", p]
                made.add(p)
        if kind == "link":
            args += ["--symlink", src, dst]
        elif kind == "tmpfs":
            args += ["--perms", "1777"] + (["--size", src] if src else []) + ["--tmpfs", dst]
        else:
            args += [{"ro": "--ro-bind", "rw": "--bind", "dev": "--dev-bind"}[kind], src, dst]
            binds.append(dst)
        made.add(dst)
    return args + ["--remount-ro", "/", "--chdir", str(workdir), "--", *cmd]


def _userns_command(config, mounts, workdir: Path, root: Path, cmd: list[str]) -> list[str]:
    root.mkdir()
    args = [_tool("setpriv"), "--pdeathsig", "KILL", "--", _tool("unshare"), "--mount", "--propagation", "private",
            "--pid", "--fork", "--kill-child", "--ipc", "--uts"]
    if not config.network:
        args.append("--net")
    if not _as_root():
        args += ["--user", "--map-root-user"]
    args += ["--", "/bin/sh", "-c", _USERNS_SETUP, "sandbox-setup", str(root), "1" if config.network else "0",
             str(workdir)]
    for mount in mounts:
        args += list(mount)
    return args + ["--", *cmd]


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    os.chown(top, uid, gid)
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


def _rlimits(config) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) for the job's processes."""
    limits = [(resource.RLIMIT_CORE, 0, 0)]
    if config.cpu_seconds:  # SIGXCPU at the soft limit, SIGKILL a second later if it is ignored
        limits.append((resource.RLIMIT_CPU, config.cpu_seconds, config.cpu_seconds + 1))
    if config.address_space_bytes and not config.gpu_devices:  # CUDA reserves far more than it uses
        limits.append((resource.RLIMIT_AS, config.address_space_bytes, config.address_space_bytes))
    if config.file_size_bytes:
        limits.append((resource.RLIMIT_FSIZE, config.file_size_bytes, config.file_size_bytes))
    if config.open_files:
        limits.append((resource.RLIMIT_NOFILE, config.open_files, config.open_files))
    return limits


def _enter_limits(limits, cgroup: Path | None) -> None:
    """In the child, before exec: join the run's pids cgroup, set the rlimits (never above the
    current hard limit: raising one is refused even for root)."""
    if cgroup is not None:
        fd = os.open(cgroup / "cgroup.procs", os.O_WRONLY)
        os.write(fd, b"0")  # 0: the writing process
        os.close(fd)
    for res, soft, hard in limits:
        current = resource.getrlimit(res)[1]
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(res, (soft, hard))


# ---- process count: the pids cgroup, or a watchdog ----

def pids_cgroup_parent() -> Path | None:
    """A pids cgroup folder (v1 `pids` hierarchy, or v2 with pids delegated to children) this
    process's cgroup lives in and may make children in; None when there is none."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            own[c] = path.lstrip("/")
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mountpoint, fstype, options = line.split()[:4]
        if fstype == "cgroup" and "pids" in options.split(",") and "pids" in own:
            folder = Path(mountpoint) / own["pids"]
        elif fstype == "cgroup2" and "" in own:
            folder = Path(mountpoint) / own[""]
            control = folder / "cgroup.subtree_control"
            if not control.exists() or "pids" not in control.read_text().split():
                continue
        else:
            continue
        if folder.is_dir() and os.access(folder, os.W_OK):
            return folder
    return None


def _make_pids_cgroup(max_tasks: int) -> Path | None:
    parent = pids_cgroup_parent()
    if parent is None:
        return None
    cgroup = parent / f"scalerun-sandbox-{uuid.uuid4().hex[:12]}"
    try:
        cgroup.mkdir()
        (cgroup / "pids.max").write_text(str(max_tasks))
    except OSError:
        _remove_cgroup(cgroup)
        return None
    return cgroup


def _cgroup_pids(cgroup: Path) -> list[int]:
    try:
        return [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def _remove_cgroup(cgroup: Path | None) -> None:
    """Kill whatever is left in the cgroup, then remove it."""
    if cgroup is None or not cgroup.exists():
        return
    deadline = time.monotonic() + 5.0
    while (pids := _cgroup_pids(cgroup)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    try:
        cgroup.rmdir()
    except OSError:
        pass


def _tree_tasks(pid: int) -> int:
    """Processes and threads of the tree under pid (itself included)."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.num_threads()
        except psutil.NoSuchProcess:
            pass
    return total


def _disk_usage(folder) -> int:
    """Bytes allocated to the files under folder (symlinks not followed)."""
    total = 0
    stack = [str(folder)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += st.st_blocks * 512
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
    return total


# ---- how a run ended ----

# Marks in the last lines of output, latest first. The job controls its output, so it can only
# mislabel its own failure with them.
_OUTPUT_REASONS = (
    ("memory_limit", ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "can't allocate memory")),
    ("file_size_limit", ("File too large",)),
    ("open_files_limit", ("Too many open files",)),
    ("denied", ("Permission denied", "Read-only file system", "Operation not permitted", "Connection refused",
                "Network is unreachable", "name resolution", "Name or service not known")),
)


def exit_signal(returncode: int | None, wrapped: bool) -> int | None:
    """The signal that ended the job: a negative return code is the started process's own signal;
    bwrap and the userns setup report a job killed by signal N as 128 + N."""
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    if wrapped and returncode > 128:
        return returncode - 128
    return None


def reason_from_output(lines) -> str:
    for line in reversed(list(lines)):
        for reason, marks in _OUTPUT_REASONS:
            if any(m in line for m in marks):
                return reason
    return "crashed"


class Confined:
    """One confined process tree: `proc` (the Popen), the watchdog (`check`, call it often), how it
    ended (`exit_reason`), and `close` (kills what is left in its cgroup, removes its files)."""

    def __init__(self, mode: str, config: SandboxConfig, proc: subprocess.Popen, workdir: Path, private: Path,
                 cgroup: Path | None):
        self.mode, self.config, self.proc, self.workdir = mode, config, proc, workdir
        self._private, self.cgroup = private, cgroup
        self.started = time.monotonic()
        self._checked = 0.0

    def check(self) -> str | None:
        """The limit the run has passed (timeout, process_limit, disk_limit), or None."""
        now = time.monotonic()
        if now - self._checked < WATCH_INTERVAL_S:
            return None
        self._checked = now
        cfg = self.config
        if cfg.wall_seconds and now - self.started >= cfg.wall_seconds:
            return "timeout"
        if cfg.max_processes and self._process_limit_hit():
            return "process_limit"
        if cfg.disk_bytes and _disk_usage(self.workdir) > cfg.disk_bytes:
            return "disk_limit"
        return None

    def _process_limit_hit(self) -> bool:
        """Any fork refused by the cgroup, or (no cgroup) more tasks in the tree than allowed."""
        if self.cgroup is not None:
            try:
                events = dict(line.split() for line in (self.cgroup / "pids.events").read_text().splitlines())
            except FileNotFoundError:
                return False
            return int(events.get("max", 0)) > 0
        return _tree_tasks(self.proc.pid) > self.config.max_processes

    def exit_reason(self, returncode: int, tail) -> str:
        """How a job that exited by itself ended: ok, cpu_limit, file_size_limit, process_limit, or
        (read from its last output lines) memory_limit, open_files_limit, denied, else crashed."""
        if self.config.max_processes and self._process_limit_hit():
            return "process_limit"
        sig = exit_signal(returncode, self.mode != "off")
        if sig == signal.SIGXCPU:
            return "cpu_limit"
        if sig == signal.SIGXFSZ:
            return "file_size_limit"
        return "ok" if returncode == 0 else reason_from_output(tail)

    def close(self) -> None:
        _remove_cgroup(self.cgroup)
        shutil.rmtree(self._private, ignore_errors=True)


# ---- reading what a job wrote ----

class UntrustedOutput(Exception):
    """A result file that must not be read: outside the work folder, a symlink, not a regular file, too big."""


def read_output(workdir, name: str, max_bytes: int = 1 << 20) -> bytes:
    """The bytes of a result file a confined job wrote (e.g. final_info.json), read without trusting
    it: its real path must stay inside the work folder, it is opened with O_NOFOLLOW (a planted
    symlink is refused) and must be a regular file of at most max_bytes. Read it after the job's
    processes are gone, so nothing can swap the path in between."""
    root = os.path.realpath(workdir)
    path = os.path.join(root, name)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise UntrustedOutput(f"{name} resolves outside the work folder, to {real}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UntrustedOutput(f"{name} is a symlink") from None
        raise
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UntrustedOutput(f"{name} is not a regular file")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UntrustedOutput(f"{name} is larger than {max_bytes} bytes")
    return data


class LogFlood(Exception):
    """More output than the log's total cap."""


def bounded_lines(fd: int, line_bytes: int, total_bytes: int):
    """The lines read from fd (str, newline kept), each cut to line_bytes (a mark says so; the rest
    of that line is dropped); raises LogFlood once more than total_bytes have come."""
    total, pending, cutting = 0, b"", False
    while chunk := os.read(fd, 1 << 16):
        total += len(chunk)
        if total > total_bytes:
            raise LogFlood(f"more than {total_bytes} bytes of output")
        *complete, pending = (pending + chunk).split(b"\n")
        for raw in complete:
            if not cutting:
                yield _cut(raw, line_bytes)
            cutting = False
        if len(pending) > line_bytes:
            if not cutting:
                yield _cut(pending, line_bytes)
            pending, cutting = b"", True
    if pending and not cutting:
        yield pending.decode(errors="replace")


def _cut(raw: bytes, line_bytes: int) -> str:
    mark = f" [line cut at {line_bytes} bytes]" if len(raw) > line_bytes else ""
    return raw[:line_bytes].decode(errors="replace") + mark + "\n"
